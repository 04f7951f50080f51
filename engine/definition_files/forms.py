"""Finding and checking the JSON forms that user tasks name."""

from __future__ import annotations

import json
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath

from jsonschema import Draft202012Validator
from jsonschema.exceptions import SchemaError

from engine.settings import PROJECT_ROOT

from .model import Problem

FORMS_PREFIX = "forms/"


@dataclass
class FormLookup:
    """Uploaded forms first, then the forms folders; each form is read and checked once."""

    uploaded: Mapping[str, bytes]
    dirs: Sequence[Path]
    found: dict[str, str] = field(default_factory=dict)  # "forms/<name>" -> text
    _checked: dict[tuple[str, bool], list[Problem] | None] = field(default_factory=dict)

    def check(self, name: str, ui: bool) -> list[Problem] | None:
        """Problems of form ``name`` (a UI schema when ``ui``); None when it does not exist."""
        key = (name, ui)
        if key not in self._checked:
            data = self._read(name)
            if data is None:
                self._checked[key] = None
            else:
                problems = _check_form(FORMS_PREFIX + name, data, ui)
                if not problems:
                    self.found[FORMS_PREFIX + name] = data.decode("utf-8")
                self._checked[key] = problems
        return self._checked[key]

    def where(self) -> str:
        """Where forms were looked for, without revealing paths outside the project."""
        places = ["the uploaded forms"] if self.uploaded else []
        for folder in self.dirs:
            try:
                places.append(Path(folder).resolve().relative_to(PROJECT_ROOT).as_posix() + "/")
            except ValueError:
                places.append(f"{Path(folder).name}/")
        return ", ".join(places) or "no forms folder"

    def _read(self, name: str) -> bytes | None:
        for key in (name, FORMS_PREFIX + name):
            if key in self.uploaded:
                return self.uploaded[key]
        for folder in self.dirs:
            path = Path(folder, *PurePosixPath(name).parts)
            if path.is_file():
                return path.read_bytes()
        return None


def bad_form_name(name: str) -> bool:
    """A form name must stay inside the forms folder (no absolute path, no '..')."""
    path = PurePosixPath(name)
    return not name.strip() or "\\" in name or path.is_absolute() or ".." in path.parts


def _check_form(file: str, data: bytes, ui: bool) -> list[Problem]:
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as e:
        return [Problem(file, None, f"form is not UTF-8 text: {e}")]
    try:
        doc = json.loads(text)
    except json.JSONDecodeError as e:
        return [Problem(file, e.lineno, f"form is not valid JSON: {e.msg} (column {e.colno})")]
    what = "UI schema" if ui else "form"
    if not isinstance(doc, dict):
        return [Problem(file, 1, f"{what} must be a JSON object, not {type(doc).__name__}")]
    if ui:
        return []
    try:
        Draft202012Validator.check_schema(doc)
    except SchemaError as e:
        return [Problem(file, _line_of_path(text, e.path),
                        f"form is not a valid JSON Schema (Draft 2020-12) at {e.json_path}: "
                        f"{e.message}")]
    return []


def _line_of_path(text: str, path) -> int:
    """Best-effort line of a JSON path: follow its keys through the text in order."""
    pos = 0
    for part in path:
        if isinstance(part, str):
            m = re.compile(re.escape(json.dumps(part)) + r"\s*:").search(text, pos)
            if m is None:
                break
            pos = m.start()
    return text.count("\n", 0, pos) + 1
