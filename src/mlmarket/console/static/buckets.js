// The bucket page's upload, progressive: the file is sent as the request's body itself, which
// the server streams into PutObject (a multipart form is read whole before any page sees it),
// and a file past the console's limit is refused before a byte is sent. Without this script
// the form posts multipart.
"use strict";

function upload(form) {
  const problem = form.querySelector("[data-test=upload-problem]");
  const button = form.querySelector("button");
  const say = (message) => {
    problem.textContent = message;
    problem.hidden = !message;
  };

  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    const file = form.elements.file.files[0];
    const limit = Number(form.dataset.limit);
    if (!file) {
      say("Choose a file to upload.");
      return;
    }
    if (file.size > limit) {
      say(`Not sent: ${file.size.toLocaleString("en-US")} bytes is past the limit of ${limit.toLocaleString("en-US")} bytes.`);
      return;
    }
    say("");
    button.disabled = true;
    button.textContent = "Uploading…";
    const query = new URLSearchParams({ folder: form.elements.folder.value, name: file.name, type: file.type });
    try {
      const response = await fetch(`${form.action}?${query}`, {
        method: "POST",
        body: file,
        credentials: "same-origin",
        headers: {
          "Accept": "application/json",
          "Content-Type": "application/octet-stream",
          "X-CSRF-Token": form.elements.csrf.value,
        },
      });
      if (response.ok) {
        window.location.assign(response.url); // the folder it went into
        return;
      }
      const error = await response.json().catch(() => ({ code: response.status, message: response.statusText }));
      say(`${error.code}: ${error.message}`);
    } catch (error) {
      say(`The upload failed: ${error}`);
    } finally {
      button.disabled = false;
      button.textContent = "Upload";
    }
  });
}

for (const form of document.querySelectorAll("form[data-upload]")) upload(form);
