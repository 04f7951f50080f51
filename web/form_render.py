"""Server-side task forms: JSON Schema (+ UI schema) -> fields to render, and a submitted
HTML form -> typed data for the engine.

The forms in ``forms/`` follow the conventions in ``forms/README.md``; this module
supports what they use, plus file inputs for evidence:

* ``fields_for(schema, ui_schema)`` gives one :class:`Field` per property, in the
  UI schema's ``ui:order`` (else schema order). An object property (the complainant)
  becomes a ``group`` field with child fields named ``parent.child``.
* ``parse_submission(schema, ui_schema, form)`` turns the posted strings back into
  JSON values: a ticked box is ``True``, an unticked one ``False`` (except a box that
  must be ticked, ``const: true``, which is left out so the schema says it is
  needed); numbers are parsed; empty optional text is left out; a ``datetime-local``
  value on the Europe/London clock becomes an ISO UTC instant with ``+00:00``.
  Posted names the form does not declare (the CSRF token) are ignored.
* ``validate(...)`` does that and then applies the engine's own check
  (``engine.forms.check_form_data``), with the messages rewritten for staff.
* Evidence: a property with ``"format": "evidence"`` (engine/forms.py) is a file input
  (``multiple`` unless ``maxItems`` is 1). The files arrive in ``request.files``: the
  caller checks and stores them (engine/documents.py) and passes the references as
  ``uploads`` ({field name: [{"document_id", "filename"}, ...]}) to ``validate``.

Values to show again (after an error, or from the case's data) are raw form strings
keyed by field name: pass the submitted ``request.form`` itself, or
``values_from_data(...)``, as ``values`` to the ``render_fields`` macro in
``templates/form_fields.html``; or set ``Field.value`` with ``fill_values``.

Clock changes: a local time that happens twice (the clocks go back, 01:00-02:00 on
the last Sunday of October) is taken as the first one (BST), as the business calendar
does. A local time that does not exist (the clocks go forward, 01:00-02:00 on the
last Sunday of March) is refused with a message, because it is a fact being recorded
and guessing would record the wrong instant.
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field, replace
from datetime import UTC, date, datetime
from typing import Any
from zoneinfo import ZoneInfo

from jsonschema import Draft202012Validator

from engine.calendar import iso, parse_instant
from engine.documents import ALLOWED_CONTENT_TYPES, describe_limits
from engine.errors import InvalidData
from engine.forms import EVIDENCE_FORMAT, check_form_data, form_source_key

DEFAULT_TIMEZONE = "Europe/London"
TEXTAREA_OVER = 200  # a text field longer than this many characters gets a text area
RADIO_UP_TO = 4  # a choice with this many options or fewer is shown as radio buttons
DEFAULT_ROWS = 4

KINDS = (
    "text",
    "textarea",
    "choice",
    "boolean",
    "date",
    "datetime",
    "number",
    "integer",
    "email",
    "file",
    "list",
    "group",
)

YES_NO = [("true", "Yes"), ("false", "No")]

#: What an evidence file input offers to choose (the store's accepted types, and the
#: usual file name endings, for browsers that go by the name).
EVIDENCE_ACCEPT = ",".join(sorted(ALLOWED_CONTENT_TYPES)
                           + [".pdf", ".png", ".jpg", ".jpeg", ".txt", ".eml"])


@dataclass
class Field:
    """One control (or, for ``group``, one set of controls) of a task form."""

    name: str  # the HTML name: the property, or "parent.child" inside a group
    label: str
    kind: str  # one of KINDS
    help: str | None = None
    required: bool = False  # must be given whenever the form is sent (HTML ``required``)
    conditional: bool = False  # required only in some cases (an if/then of the schema)
    widget: str | None = None  # choice: "radio" or "select"; boolean: "checkbox"
    must_tick: bool = False  # a confirmation box (boolean with const: true)
    options: list[tuple[str, str]] = field(default_factory=list)  # (value, title)
    option_data: dict[str, Any] = field(default_factory=dict, repr=False)  # value -> JSON
    constraints: dict[str, Any] = field(default_factory=dict)  # extra HTML attributes
    json_type: str | None = None  # the schema's type
    rows: int | None = None  # textarea / list height
    note: str | None = None  # how to enter the value, shown with the help text
    children: list[Field] = field(default_factory=list)
    value: Any = None  # raw value to show (string, or list of strings)
    evidence: bool = False  # a file input whose uploads are stored as evidence

    @property
    def id(self) -> str:
        return "f-" + re.sub(r"[^A-Za-z0-9_-]", "-", self.name)

    @property
    def optional(self) -> bool:
        """Whether to mark the label "(optional)"."""
        if self.required or self.conditional or self.must_tick or self.kind == "boolean":
            return False
        return "optional" not in self.label.lower()

    @property
    def input_type(self) -> str:
        return {
            "date": "date",
            "datetime": "datetime-local",
            "number": "number",
            "integer": "number",
            "email": "email",
            "file": "file",
        }.get(self.kind, "text")

    def walk(self) -> Iterable[Field]:
        yield self
        for child in self.children:
            yield from child.walk()


class FieldList(list):
    """The fields of a form, with ``by_name`` covering the fields inside groups too."""

    @property
    def by_name(self) -> dict[str, Field]:
        return {f.name: f for top in self for f in top.walk()}

    @property
    def needs_multipart(self) -> bool:
        """True when the ``<form>`` must use ``enctype="multipart/form-data"``."""
        return any(f.kind == "file" for f in self.by_name.values())


# -- schema -> fields -------------------------------------------------------------------


def humanise(name: str) -> str:
    words = re.sub(r"[_\-.]+", " ", name).strip()
    return words[:1].upper() + words[1:] if words else name


def fields_for(schema: dict, ui_schema: dict | None = None) -> FieldList:
    """One Field per property of ``schema``, in the UI order."""
    conditional = _conditionally_required(schema)
    return FieldList(
        _fields(schema, ui_schema or {}, prefix="", parent_required=True, conditional=conditional)
    )


def _fields(
    schema: dict, ui: dict, prefix: str, parent_required: bool, conditional: set[str]
) -> list[Field]:
    properties: dict[str, dict] = schema.get("properties") or {}
    required = set(schema.get("required") or [])
    order = _ui_order(list(properties), ui.get("ui:order"))
    result = []
    for name in order:
        prop = properties[name]
        prop_ui = ui.get(name) if isinstance(ui.get(name), dict) else {}
        result.append(
            _field(
                prefix + name,
                prop,
                prop_ui,
                required=parent_required and name in required,
                # inside an optional group, "required" means: when the group is given
                conditional=(name in required) if prefix else (name in conditional),
                conditional_names=conditional,
            )
        )
    return result


def _ui_order(names: list[str], order: list[str] | None) -> list[str]:
    """RJSF rules: the listed names first, ``*`` stands for the rest; unknown names skipped;
    properties the order forgets still come (at the end), so no field is lost."""
    if not order:
        return names
    listed = [n for n in order if n in names]
    rest = [n for n in names if n not in listed]
    if "*" in order:
        star = order.index("*")
        before = [n for n in order[:star] if n in names]
        after = [n for n in order[star + 1 :] if n in names]
        return before + rest + after
    return listed + rest


def _field(
    name: str,
    prop: dict,
    ui: dict,
    required: bool,
    conditional: bool,
    conditional_names: set[str],
) -> Field:
    leaf = name.rsplit(".", 1)[-1]
    kind_type = prop.get("type")
    if isinstance(kind_type, list):  # ["string", "null"] and the like
        kind_type = next((t for t in kind_type if t != "null"), None)
    widget_hint = ui.get("ui:widget")
    options_ui = ui.get("ui:options") if isinstance(ui.get("ui:options"), dict) else {}
    f = Field(
        name=name,
        label=str(prop.get("title") or ui.get("ui:title") or humanise(leaf)),
        kind="text",
        help=prop.get("description") or ui.get("ui:help"),
        required=required,
        conditional=conditional,
        json_type=kind_type,
    )
    choices = _options(prop)
    if prop.get("format") == EVIDENCE_FORMAT:
        f.kind = "file"
        f.evidence = True
        if kind_type == "array" and prop.get("maxItems") != 1:
            f.constraints["multiple"] = True
        f.constraints["accept"] = EVIDENCE_ACCEPT
        f.note = describe_limits() + "."
        if isinstance(prop.get("maxItems"), int) and prop["maxItems"] > 1:
            f.note = f"Up to {prop['maxItems']} files: {describe_limits()}."
    elif kind_type == "object" and isinstance(prop.get("properties"), dict):
        f.kind = "group"
        f.children = _fields(prop, ui, name + ".", required, set())
    elif choices is not None:
        f.kind = "choice"
        f.options = [(_option_value(v), title) for v, title in choices]
        f.option_data = {_option_value(v): v for v, _title in choices}
        f.widget = "radio" if widget_hint == "radio" or len(choices) <= RADIO_UP_TO else "select"
        if widget_hint == "select":
            f.widget = "select"
    elif kind_type == "boolean":
        if widget_hint in ("radio", "select"):
            f.kind = "choice"
            f.widget = widget_hint
            f.options = list(YES_NO)
            f.option_data = {"true": True, "false": False}
        else:
            f.kind = "boolean"
            f.widget = "checkbox"
            f.must_tick = prop.get("const") is True
    elif kind_type in ("number", "integer"):
        f.kind = kind_type
        if "minimum" in prop:
            f.constraints["min"] = prop["minimum"]
        if "maximum" in prop:
            f.constraints["max"] = prop["maximum"]
        f.constraints["step"] = "1" if kind_type == "integer" else "any"
        f.constraints["inputmode"] = "numeric" if kind_type == "integer" else "decimal"
    elif kind_type == "array":
        items = prop.get("items") if isinstance(prop.get("items"), dict) else {}
        if _is_file(items):
            f.kind = "file"
            f.constraints["multiple"] = True
        else:
            f.kind = "list"
            f.rows = int(options_ui.get("rows") or DEFAULT_ROWS)
            f.note = "One per line."
            if "maxItems" in prop:
                f.note = f"One per line, at most {prop['maxItems']}."
    elif _is_file(prop):
        f.kind = "file"
    elif prop.get("format") == "date-time":
        f.kind = "datetime"
        f.note = "Use UK time (the time on the clocks in the UK on that day)."
    elif prop.get("format") == "date":
        f.kind = "date"
    elif prop.get("format") == "email":
        f.kind = "email"
    else:
        max_length = prop.get("maxLength")
        if widget_hint == "textarea" or (
            widget_hint is None and isinstance(max_length, int) and max_length > TEXTAREA_OVER
        ):
            f.kind = "textarea"
            f.rows = int(options_ui.get("rows") or DEFAULT_ROWS)
        else:
            f.kind = "text"
    if f.kind in ("text", "textarea", "email"):
        if isinstance(prop.get("minLength"), int) and prop["minLength"] > 1:
            f.constraints["minlength"] = prop["minLength"]
        if isinstance(prop.get("maxLength"), int):
            f.constraints["maxlength"] = prop["maxLength"]
    if f.kind == "file" and not f.evidence:
        media = prop.get("contentMediaType") or (prop.get("items") or {}).get("contentMediaType")
        if media:
            f.constraints["accept"] = media
    return f


def _is_file(prop: dict) -> bool:
    return prop.get("format") == "binary" or "contentMediaType" in prop


def _options(prop: dict) -> list[tuple[Any, str]] | None:
    """(value, title) pairs of an enum (titles from a oneOf/anyOf of const/title)."""
    titled = prop.get("oneOf") or prop.get("anyOf")
    pairs: list[tuple[Any, str]] = []
    if (
        isinstance(titled, list)
        and titled
        and all(isinstance(o, dict) and "const" in o for o in titled)
    ):
        pairs = [(o["const"], str(o.get("title") or _option_title(o["const"]))) for o in titled]
    elif isinstance(prop.get("enum"), list):
        pairs = [(v, _option_title(v)) for v in prop["enum"] if v is not None]
    else:
        return None
    return pairs


def _option_value(value: Any) -> str:
    return value if isinstance(value, str) else json.dumps(value)


def _option_title(value: Any) -> str:
    if value is True:
        return "Yes"
    if value is False:
        return "No"
    return humanise(str(value))


def _conditionally_required(schema: dict) -> set[str]:
    """Top-level names an if/then (also inside allOf/anyOf/oneOf) makes required."""
    names: set[str] = set()
    stack = [schema]
    while stack:
        node = stack.pop()
        if not isinstance(node, dict):
            continue
        for key in ("then", "else"):
            branch = node.get(key)
            if isinstance(branch, dict):
                names.update(branch.get("required") or [])
                stack.append(branch)
        for key in ("allOf", "anyOf", "oneOf"):
            if isinstance(node.get(key), list):
                stack.extend(node[key])
    return names


# -- submitted form -> data -------------------------------------------------------------


def _raw_values(form: Mapping[str, Any], name: str) -> list[str]:
    if hasattr(form, "getlist"):
        values = form.getlist(name)
    else:
        value = form.get(name)
        if value is None:
            values = []
        elif isinstance(value, list | tuple):
            values = list(value)
        else:
            values = [value]
    return [v for v in values if isinstance(v, str)]


def _first(form: Mapping[str, Any], name: str) -> str | None:
    values = _raw_values(form, name)
    return values[0] if values else None


def parse_submission(
    schema: dict,
    ui_schema: dict | None,
    form: Mapping[str, Any],
    timezone: str = DEFAULT_TIMEZONE,
    uploads: Mapping[str, list[dict]] | None = None,
) -> tuple[dict, dict[str, list[str]]]:
    """The submitted HTML form as typed JSON data, and per-field errors of reading it.

    ``uploads``: the references of the files stored for each evidence field."""
    zone = ZoneInfo(timezone)
    data: dict[str, Any] = {}
    errors: dict[str, list[str]] = {}
    for f in fields_for(schema, ui_schema):
        _parse_into(f, form, zone, data, errors, uploads or {})
    return data, errors


def _parse_into(
    f: Field,
    form: Mapping[str, Any],
    zone: ZoneInfo,
    data: dict[str, Any],
    errors: dict[str, list[str]],
    uploads: Mapping[str, list[dict]],
) -> bool:
    """Put the field's value into ``data`` (keyed by its last name part). Returns whether
    anything was entered for it."""
    key = f.name.rsplit(".", 1)[-1]
    if f.kind == "group":
        inner: dict[str, Any] = {}
        entered = False
        for child in f.children:
            entered = _parse_into(child, form, zone, inner, errors, uploads) or entered
        if entered or f.required:
            data[key] = inner
        return entered
    if f.kind == "boolean":
        ticked = any(
            v.strip().lower() not in ("", "false", "off", "0") for v in _raw_values(form, f.name)
        )
        if ticked:
            data[key] = True
        elif not f.must_tick:
            data[key] = False
        return ticked
    if f.evidence:
        stored = list(uploads.get(f.name) or [])
        if stored:
            data[key] = stored
        return bool(stored)
    if f.kind == "file":
        # Uploads arrive in request.files, not here: the caller stores them and puts
        # their references into the data. A reference posted back as text is kept.
        ref = (_first(form, f.name) or "").strip()
        if ref:
            data[key] = ref
        return bool(ref)
    if f.kind == "list":
        items: list[str] = []
        for raw in _raw_values(form, f.name):
            items.extend(p.strip() for p in re.split(r"[\r\n,;]+", raw))
        items = [i for i in items if i]
        if items:
            data[key] = items
        return bool(items)
    raw = _first(form, f.name)
    if raw is None:
        return False
    text = raw.replace("\r\n", "\n").replace("\r", "\n")
    if not text.strip():
        return False
    text = text.strip()
    try:
        data[key] = _convert(f, text, zone)
    except ValueError as e:
        errors.setdefault(f.name, []).append(str(e))
    return True


def _convert(f: Field, text: str, zone: ZoneInfo) -> Any:
    if f.kind == "choice":
        if text in f.option_data:
            return f.option_data[text]
        raise ValueError("choose one of the options")
    if f.kind == "number":
        return _number(text)
    if f.kind == "integer":
        number = _number(text)
        if isinstance(number, float):
            if not number.is_integer():
                raise ValueError("enter a whole number")
            number = int(number)
        return number
    if f.kind == "date":
        return _date(text).isoformat()
    if f.kind == "datetime":
        return iso(local_to_instant(text, zone))
    return text


def _number(text: str) -> int | float:
    cleaned = text.replace(",", "").replace("£", "").replace(" ", "")
    try:
        if re.fullmatch(r"[+-]?\d+", cleaned):
            return int(cleaned)
        number = float(cleaned)
    except ValueError:
        raise ValueError("enter a number, e.g. 250 or 99.95") from None
    if not math.isfinite(number):
        raise ValueError("enter a number, e.g. 250 or 99.95")
    return number


def _date(text: str) -> date:
    try:
        if re.fullmatch(r"\d{4}-\d{2}-\d{2}", text):
            return date.fromisoformat(text)
        m = re.fullmatch(r"(\d{1,2})[/.](\d{1,2})[/.](\d{4})", text)  # 31/01/2027
        if m:
            return date(int(m[3]), int(m[2]), int(m[1]))
    except ValueError:
        pass
    raise ValueError("enter a real date, e.g. 2027-01-31")


def local_to_instant(text: str, zone: ZoneInfo | str = DEFAULT_TIMEZONE) -> datetime:
    """A ``datetime-local`` value read on ``zone``'s clocks, as an aware UTC datetime.

    A value carrying its own offset (``...+01:00``/``Z``) is taken as it is. A local time
    that happens twice is the first one; one that does not exist raises ValueError.
    """
    if isinstance(zone, str):
        zone = ZoneInfo(zone)
    try:
        wall = datetime.fromisoformat(text.strip().replace(" ", "T", 1))
    except ValueError:
        raise ValueError("enter a date and time, e.g. 2026-12-21 14:30") from None
    if wall.tzinfo is not None:
        return parse_instant(wall)
    wall = wall.replace(microsecond=0)
    instant = wall.replace(tzinfo=zone, fold=0).astimezone(UTC)
    if instant.astimezone(zone).replace(tzinfo=None) != wall:
        raise ValueError(
            f"{wall:%H:%M} did not happen on {wall.day} {wall:%B %Y} in UK time: the clocks"
            " went forward an hour that night; check the time (add an hour if it was read"
            " from a clock that had not been changed)"
        )
    return instant


def instant_to_local(value: str | datetime, zone: ZoneInfo | str = DEFAULT_TIMEZONE) -> str:
    """An instant as the value of a ``datetime-local`` input on ``zone``'s clocks."""
    if isinstance(zone, str):
        zone = ZoneInfo(zone)
    local = parse_instant(value).astimezone(zone)
    return local.strftime("%Y-%m-%dT%H:%M:%S" if local.second else "%Y-%m-%dT%H:%M")


# -- values to show again -----------------------------------------------------------------


def values_from_data(
    schema: dict,
    ui_schema: dict | None,
    data: Mapping[str, Any],
    timezone: str = DEFAULT_TIMEZONE,
) -> dict[str, Any]:
    """Typed data (e.g. the case's current values) as raw form values for ``render_fields``."""
    zone = ZoneInfo(timezone)
    values: dict[str, Any] = {}

    def visit(fields: Iterable[Field], source: Mapping[str, Any]) -> None:
        for f in fields:
            key = f.name.rsplit(".", 1)[-1]
            if key not in source or source[key] is None:
                continue
            v = source[key]
            if f.kind == "group":
                if isinstance(v, Mapping):
                    visit(f.children, v)
            elif isinstance(v, bool):
                values[f.name] = "true" if v else "false"
            elif f.kind == "datetime":
                try:
                    values[f.name] = instant_to_local(v, zone)
                except (ValueError, TypeError):
                    values[f.name] = str(v)
            elif f.kind == "list" and isinstance(v, list):
                values[f.name] = "\n".join(str(i) for i in v)
            elif isinstance(v, str):
                values[f.name] = v
            else:
                values[f.name] = json.dumps(v)

    visit(fields_for(schema, ui_schema), data)
    # An unticked checkbox is absent from a real submission: mirror that.
    return {k: v for k, v in values.items() if v != "false" or _is_radio(schema, ui_schema, k)}


def _is_radio(schema: dict, ui_schema: dict | None, name: str) -> bool:
    f = fields_for(schema, ui_schema).by_name.get(name)
    return f is not None and f.kind != "boolean"


def fill_values(fields: Iterable[Field], values: Mapping[str, Any]) -> FieldList:
    """Copies of ``fields`` with ``value`` set from ``values`` (a submitted form, or
    ``values_from_data``)."""

    def fill(f: Field) -> Field:
        raw = _raw_values(values, f.name)
        value: Any = raw if f.kind == "list" and len(raw) > 1 else (raw[0] if raw else None)
        return replace(f, value=value, children=[fill(c) for c in f.children])

    return FieldList(fill(f) for f in fields)


# -- validation with messages for staff ---------------------------------------------------


def validate(
    schema: dict,
    ui_schema: dict | None,
    form: Mapping[str, Any],
    sources: dict[str, str] | None = None,
    form_name: str | None = None,
    timezone: str = DEFAULT_TIMEZONE,
    uploads: Mapping[str, list[dict]] | None = None,
) -> tuple[dict, dict[str, list[str]]]:
    """Read the form and check it as the engine will; errors in plain English, keyed by
    field name (``parent.child`` inside a group, ``_form`` for the form as a whole).

    ``sources``/``form_name`` name the deployed form (the definition version's sources);
    without them ``schema`` itself is checked the same way.
    """
    data, errors = parse_submission(schema, ui_schema, form, timezone, uploads)
    if sources is None or form_name is None:
        form_name = form_name or "form.json"
        sources = {form_source_key(form_name): json.dumps(schema)}
    try:
        check_form_data(sources, form_name, data)
    except InvalidData as e:
        engine_fields = e.fields
    else:
        engine_fields = {}
    fields = fields_for(schema, ui_schema).by_name
    friendly = schema_errors(schema, data, fields) if engine_fields else {}
    covered = set(friendly)
    for key, messages in engine_fields.items():
        name = _field_key(key, fields)
        if name in covered or name in errors:
            continue
        for message in messages:
            _add(friendly, name, _rewrite_engine_message(message))
    for name, messages in friendly.items():
        if name in errors:  # the value could not be read; that is the message to give
            continue
        for message in messages:
            _add(errors, name, message)
    return data, errors


def _add(errors: dict[str, list[str]], name: str, message: str) -> None:
    bucket = errors.setdefault(name, [])
    if message not in bucket:
        bucket.append(message)


def _field_key(path: str, fields: Mapping[str, Field]) -> str:
    """The field an error path belongs to: ``need_to_know_users.0`` -> the list field."""
    parts = path.split(".")
    while parts:
        name = ".".join(parts)
        if name in fields:
            return name
        parts.pop()
    return path


def schema_errors(
    schema: dict, data: Mapping[str, Any], fields: Mapping[str, Field] | None = None
) -> dict[str, list[str]]:
    """The schema's complaints about ``data``, per field, in plain English."""
    if fields is None:
        fields = fields_for(schema, None).by_name
    validator = Draft202012Validator(schema, format_checker=Draft202012Validator.FORMAT_CHECKER)
    result: dict[str, list[str]] = {}
    for error in validator.iter_errors(data):
        for path, message in _explain(error, fields):
            _add(result, _field_key(path, fields), message)
    return result


def _explain(error: Any, fields: Mapping[str, Field]) -> list[tuple[str, str]]:
    path = ".".join(str(p) for p in error.absolute_path)
    kind = error.validator
    value = error.validator_value
    if kind == "required":
        instance = error.instance if isinstance(error.instance, Mapping) else {}
        missing = [p for p in value if p not in instance]
        out = []
        for name in missing:
            full = f"{path}.{name}" if path else name
            out.append((full, _required_message(fields.get(full))))
        return out
    f = fields.get(_field_key(path, fields)) if path else None
    name = path or "_form"
    if kind == "additionalProperties":
        return [(name, "this form has no such field")]
    if kind == "minLength":
        if value <= 1:
            return [(name, "this field is required")]
        return [(name, f"must be at least {value} characters")]
    if kind == "maxLength":
        return [(name, f"must be at most {value} characters")]
    if kind == "enum":
        return [(name, "choose one of the options")]
    if kind in ("oneOf", "anyOf") and f is not None and f.kind == "choice":
        return [(name, "choose one of the options")]
    if kind == "const":
        return [(name, _const_message(error, f))]
    if kind == "type":
        return [(name, _type_message(value))]
    if kind == "minimum":
        return [(name, f"must be at least {_num(value)}")]
    if kind == "maximum":
        return [(name, f"must be at most {_num(value)}")]
    if kind == "exclusiveMinimum":
        return [(name, f"must be more than {_num(value)}")]
    if kind == "exclusiveMaximum":
        return [(name, f"must be less than {_num(value)}")]
    if kind == "maxItems":
        if f is not None and f.kind == "file":
            return [(name, f"choose at most {value} file{'' if value == 1 else 's'}")]
        return [(name, f"give at most {value}")]
    if kind == "minItems":
        return [(name, f"give at least {value}")]
    if kind == "uniqueItems":
        return [(name, "give each one only once")]
    if kind == "format":
        return [(name, _format_message(value))]
    if kind == "pattern":
        return [(name, _pattern_message(value, f))]
    return [(name, error.message)]


def _required_message(f: Field | None) -> str:
    if f is not None and f.kind == "boolean" and f.must_tick:
        return "tick this box to confirm"
    if f is not None and f.kind == "choice":
        return "choose one of the options"
    if f is not None and f.kind == "file":
        return "choose a file"
    return "this field is required"


def _const_message(error: Any, f: Field | None) -> str:
    description = error.schema.get("description") if isinstance(error.schema, dict) else None
    if f is not None and f.kind == "boolean" and error.validator_value is True:
        return description or "tick this box to confirm"
    if description:
        return description
    if f is not None and f.options:
        wanted = _option_value(error.validator_value)
        for value, title in f.options:
            if value == wanted:
                return f"must be \u201c{title}\u201d"
    return f"must be {_option_title(error.validator_value)}"


def _type_message(expected: Any) -> str:
    expected = expected if isinstance(expected, list) else [expected]
    if "integer" in expected:
        return "enter a whole number"
    if "number" in expected:
        return "enter a number"
    if "boolean" in expected:
        return "choose yes or no"
    return "this value is not of the right kind"


def _format_message(fmt: str) -> str:
    return {
        "email": "enter an email address, e.g. name@example.com",
        "date": "enter a real date, e.g. 2027-01-31",
        "date-time": "enter a date and time",
    }.get(fmt, "this value is not in the expected form")


_CLASS_WORDS = (("A-Za-z", "letters"), ("a-zA-Z", "letters"), ("0-9", "digits"))


def _pattern_message(pattern: str, f: Field | None) -> str:
    if f is not None and f.kind == "date":
        return "enter a real date, e.g. 2027-01-31"
    if f is not None and f.kind == "datetime":
        return "enter a date and time"
    m = re.fullmatch(r"\^\[([^\]]+)\][+*]\$", pattern)
    if m:
        chars = m[1]
        words = []
        for token, word in _CLASS_WORDS:
            if token in chars:
                chars = chars.replace(token, "")
                if word not in words:
                    words.append(word)
        extra = " ".join(chars.replace("\\", ""))
        allowed = " and ".join(filter(None, [", ".join(words), extra]))
        return f"use only {allowed}"
    return "this value is not in the expected form"


def _num(value: Any) -> str:
    if isinstance(value, float) and value.is_integer():
        value = int(value)
    return f"{value:,}" if isinstance(value, int) else str(value)


_ENGINE_PATTERNS = [
    (re.compile(r"is a required property"), "this field is required"),
    (re.compile(r"is too long"), "is too long"),
    (re.compile(r"is not one of"), "choose one of the options"),
    (re.compile(r"^True was expected"), "tick this box to confirm"),
    (re.compile(r"is not of type 'number'"), "enter a number"),
    (re.compile(r"is not of type 'integer'"), "enter a whole number"),
]


def _rewrite_engine_message(message: str) -> str:
    for pattern, plain in _ENGINE_PATTERNS:
        if pattern.search(message):
            return plain
    return message
