// The console's script: progressive only; every page but the try-it panel works without it.
"use strict";

const LIMIT_SECONDS = 60; // SageMaker's limit per real-time call (R6)

function autosubmit() {
  for (const select of document.querySelectorAll("select[data-autosubmit]")) {
    select.addEventListener("change", () => select.form.submit());
  }
}

// The try-it panel: the body's size against the 6 MiB limit, refused before sending; the call
// through the console (its CSRF token in a header); the answer shown by its content type.
function tryIt(panel) {
  const limit = Number(panel.dataset.limit);
  const field = (name) => panel.querySelector(`[name="${name}"]`);
  const part = (test) => panel.querySelector(`[data-test="${test}"]`);
  const button = part("invoke");
  let file = null;

  const body = () => file || new Blob([field("body").value]);
  const measure = () => {
    const size = body().size;
    part("meter").value = Math.min(size, limit);
    part("size").textContent = size.toLocaleString("en-US");
    const refused = part("refused");
    refused.hidden = size <= limit;
    refused.textContent = size > limit
      ? `Not sent: ${size.toLocaleString("en-US")} bytes is past the limit of ${limit.toLocaleString("en-US")} bytes.`
      : "";
    button.disabled = size > limit;
  };
  field("body").addEventListener("input", () => { file = null; field("file").value = ""; measure(); });
  field("file").addEventListener("change", () => {
    file = field("file").files[0] || null;
    if (file && !field("content-type").dataset.edited && file.type) {
      field("content-type").value = file.type;
    }
    measure();
  });
  field("content-type").addEventListener("input", () => { field("content-type").dataset.edited = "1"; });

  button.addEventListener("click", async () => {
    measure();
    if (button.disabled) return;
    const waiting = part("waiting");
    const answer = part("answer");
    const started = Date.now();
    waiting.hidden = false;
    answer.hidden = true;
    const tick = () => {
      const seconds = Math.floor((Date.now() - started) / 1000);
      waiting.textContent = `Waiting: ${seconds} s of the ${LIMIT_SECONDS} s limit`;
    };
    tick();
    const timer = setInterval(tick, 250);
    button.disabled = true;
    try {
      const headers = {
        "Accept": "application/json, */*",
        "X-CSRF-Token": panel.dataset.csrf,
        "X-Invoke-Content-Type": field("content-type").value,
        "Content-Type": "application/octet-stream",
      };
      if (field("accept").value) headers["X-Invoke-Accept"] = field("accept").value;
      const response = await fetch(`/console/endpoints/${encodeURIComponent(panel.dataset.endpoint)}/invoke`,
        { method: "POST", body: body(), headers, credentials: "same-origin" });
      show(answer, response, await response.blob(), Date.now() - started);
    } catch (error) {
      answer.replaceChildren(text("p", `The call failed: ${error}`));
      answer.hidden = false;
    } finally {
      clearInterval(timer);
      waiting.hidden = true;
      button.disabled = false;
      measure();
    }
  });
  measure();
}

function text(tag, value) {
  const node = document.createElement(tag);
  node.textContent = value;
  return node;
}

async function show(answer, response, blob, millis) {
  const type = response.headers.get("Content-Type") || "";
  const meta = text("p", `${response.status} · ${type} · ${blob.size.toLocaleString("en-US")} bytes · ${millis} ms`);
  meta.className = "meta";
  meta.dataset.test = "answer-meta";
  let shown;
  if (type.startsWith("image/")) {
    shown = document.createElement("img");
    shown.src = URL.createObjectURL(blob);
    shown.alt = "the answer";
  } else {
    let value = await blob.text();
    if (type.includes("json")) {
      try { value = JSON.stringify(JSON.parse(value), null, 2); } catch (_) { /* shown as sent */ }
    }
    shown = text("pre", value);
  }
  shown.dataset.test = "answer-body";
  answer.replaceChildren(meta, shown);
  answer.hidden = false;
}

// Work under way (a check, an endpoint being created): its status and new output lines pushed
// by the server (server-sent events); the page is loaded again once the work ends.
function follow(section) {
  const events = new EventSource(section.dataset.events);
  const status = section.querySelector("[data-follow=status]");
  const output = section.querySelector("[data-follow=output]");
  events.addEventListener("status", (message) => {
    const update = JSON.parse(message.data);
    if (status) {
      status.textContent = update.status;
      status.className = `status ${update.status.toLowerCase()}`;
    }
    if (output && update.lines.length) {
      output.textContent += (output.textContent ? "\n" : "") + update.lines.join("\n");
      output.scrollTop = output.scrollHeight;
    }
    if (update.ended) {
      events.close();
      window.location.reload();
    }
  });
}

// The pricing editor: what a buyer pays, beside each price as it is typed.
function pricePreviews() {
  for (const input of document.querySelectorAll("input[data-preview]")) {
    const cell = input.closest("tr").querySelector("[data-test=preview]");
    const per = input.dataset.preview === "inference.count.m.i.c" ? "per inference" : "per hour, per instance";
    const show = () => {
      const price = Number(input.value);
      cell.textContent = input.value.trim() && Number.isFinite(price) ? `$${price} ${per}` : "";
    };
    input.addEventListener("input", show);
  }
}

// A resource's logs: the lines written so far, then each new one, pushed by the server; each
// stream lasts a while, and the next starts after the last line shown.
function followLogs(pre) {
  let last = 0;
  const open = () => {
    const events = new EventSource(`${pre.dataset.logs}?since=${last}`);
    events.addEventListener("lines", (message) => {
      const update = JSON.parse(message.data);
      pre.textContent += (pre.textContent ? "\n" : "") + update.lines.join("\n");
      pre.scrollTop = pre.scrollHeight;
      last = update.last;
    });
    events.addEventListener("error", () => { events.close(); setTimeout(open, 1000); });
  };
  open();
}

// A resource's metrics, pushed by the server every few seconds: its instances' CPU and memory
// and, for an endpoint, this minute's and the last minute's calls.
function followMetrics(section) {
  const instances = section.querySelector("[data-follow=instances]");
  const minutes = section.querySelector("[data-follow=minutes]");
  const row = (cells) => {
    const tr = document.createElement("tr");
    for (const cell of cells) tr.append(text("td", cell === null || cell === undefined ? "—" : String(cell)));
    return tr;
  };
  const mib = (bytes) => (bytes === null ? null : `${(bytes / 1048576).toFixed(1)} MiB`);
  const open = () => {
    const events = new EventSource(section.dataset.metrics);
    events.addEventListener("metrics", (message) => {
      const update = JSON.parse(message.data);
      instances.replaceChildren(...update.instances.map((i) => row([i.instance, i.cores, mib(i.memory), mib(i.limit)])));
      if (!update.instances.length) {
        const none = row(["No instance is running."]);
        none.firstChild.colSpan = 4;
        none.firstChild.className = "empty";
        instances.replaceChildren(none);
      }
      if (minutes && update.minutes) {
        minutes.replaceChildren(...update.minutes.map((m) => row(
          [m.minute, m.invocations, m.errors_4xx, m.errors_5xx, m.latency_ms, m.latency_max_ms])));
      }
    });
    events.addEventListener("error", () => { events.close(); setTimeout(open, 2000); });
  };
  open();
}

// Forms that change something irreversible ask first.
function confirmations() {
  for (const form of document.querySelectorAll("form[data-confirm]")) {
    form.addEventListener("submit", (event) => {
      if (!window.confirm(form.dataset.confirm)) event.preventDefault();
    });
  }
}

document.addEventListener("DOMContentLoaded", () => {
  autosubmit();
  confirmations();
  for (const pre of document.querySelectorAll("[data-logs]")) followLogs(pre);
  for (const section of document.querySelectorAll("[data-metrics]")) followMetrics(section);
  pricePreviews();
  for (const section of document.querySelectorAll("[data-events]")) follow(section);
  const panel = document.getElementById("try-it");
  if (panel) tryIt(panel);
});
