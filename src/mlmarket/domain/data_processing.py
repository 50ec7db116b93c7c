"""DataProcessing: InputFilter → model → JoinSource → OutputFilter, for CSV and JSON records.

CSV rows are JSON arrays of their fields (so only index paths apply); joining appends the output
row's fields after the input row's. JSON and JSON Lines records join under `SageMakerOutput`,
or, when the input is not an object, as `{"SageMakerInput": …, "SageMakerOutput": …}`.
"""

from __future__ import annotations

import csv
import io
import json
from dataclasses import dataclass
from typing import Any

from mlmarket.domain.jsonpath import NoMatch, compile_path, select
from mlmarket.shapes import sagemaker as shapes

CSV = "text/csv"
JSON_TYPES = ("application/json", "application/jsonlines", "application/x-jsonlines")


class DataProcessingError(Exception):
    pass


class InvalidDataProcessing(ValueError):
    pass


@dataclass
class DataProcessing:
    content_type: str
    input_filter: list[Any]
    join_input: bool
    output_filter: list[Any]
    identity: bool

    @classmethod
    def build(
        cls,
        config: shapes.DataProcessing | None,
        content_type: str | None,
        split_type: str,
        assemble_with: str,
    ) -> DataProcessing:
        config = config or shapes.DataProcessing()
        input_path = config.get("InputFilter") or "$"
        output_path = config.get("OutputFilter") or "$"
        join = (config.get("JoinSource") or "None") == "Input"
        identity = input_path == "$" and output_path == "$" and not join
        kind = (content_type or "").split(";")[0].strip().lower()
        if not identity:
            if kind != CSV and kind not in JSON_TYPES:
                raise InvalidDataProcessing(
                    "DataProcessing needs a ContentType of text/csv, application/json or "
                    f"application/jsonlines; got '{content_type}'."
                )
            if kind == CSV and (split_type != "Line" or assemble_with != "Line"):
                raise InvalidDataProcessing(
                    "DataProcessing of text/csv needs SplitType Line and AssembleWith Line."
                )
        try:
            steps_in = compile_path(input_path)
            steps_out = compile_path(output_path)
        except ValueError as exc:
            raise InvalidDataProcessing(str(exc)) from None
        return cls(kind, steps_in, join, steps_out, identity)

    # -- records as values --

    def _parse(self, record: bytes) -> Any:
        text = record.decode("utf-8").rstrip("\r\n")
        if self.content_type == CSV:
            return next(csv.reader([text]), [])
        try:
            return json.loads(text)
        except ValueError as exc:
            raise DataProcessingError(f"record is not valid JSON: {exc}") from None

    def _render(self, value: Any, newline: bool) -> bytes:
        if self.content_type == CSV:
            out = io.StringIO()
            csv.writer(out, lineterminator="").writerow(
                value if isinstance(value, list) else [value]
            )
            text = out.getvalue()
        else:
            text = json.dumps(value, separators=(",", ":"))
        return (text + ("\n" if newline else "")).encode()

    # -- the pipeline --

    def filter_input(self, record: bytes) -> bytes:
        if self.identity:
            return record
        try:
            selected = select(self.input_filter, self._parse(record))
        except NoMatch as exc:
            raise DataProcessingError(f"InputFilter matched nothing: {exc}") from None
        return self._render(selected, record.endswith(b"\n"))

    def finish(self, inputs: list[bytes], response: bytes | bytearray) -> list[bytes | bytearray]:
        """The output records for a request of `inputs` that the model answered `response`."""
        if self.identity:
            return [response]  # written as it came, however large
        response = bytes(response)
        outputs = (
            [line for line in response.split(b"\n") if line.strip()]
            if len(inputs) > 1 or inputs[0].endswith(b"\n")
            else [response]
        )
        if len(outputs) != len(inputs):
            raise DataProcessingError(
                f"the model answered {len(outputs)} records for {len(inputs)} inputs, so "
                "inputs and outputs cannot be joined"
            )
        results: list[bytes | bytearray] = []
        for raw_in, raw_out in zip(inputs, outputs, strict=True):
            value = self._parse(raw_out)
            if self.join_input:
                value = self._join(self._parse(raw_in), value)
            try:
                value = select(self.output_filter, value)
            except NoMatch as exc:
                raise DataProcessingError(f"OutputFilter matched nothing: {exc}") from None
            results.append(self._render(value, newline=False))
        return results

    def _join(self, source: Any, output: Any) -> Any:
        if self.content_type == CSV:
            return list(source) + (list(output) if isinstance(output, list) else [output])
        if isinstance(source, dict):
            if "SageMakerOutput" in source:
                raise DataProcessingError("input records must not contain SageMakerOutput")
            return dict(source, SageMakerOutput=output)
        return {"SageMakerInput": source, "SageMakerOutput": output}
