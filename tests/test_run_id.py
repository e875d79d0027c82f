"""RunId: generation, parsing, lineage, value semantics."""

from __future__ import annotations

import copy
import os
import pickle
import re
import string
import sys
import uuid
from typing import Any

import pytest
from hypothesis import Phase, find, given, settings
from hypothesis import strategies as st

from agent_run_id import RunId
from agent_run_id._run_id import show_value

CANONICAL = re.compile(r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}")


def test_generate_makes_a_canonical_version_4_uuid() -> None:
    for _ in range(2_000):
        value = RunId.generate().value
        parsed = uuid.UUID(value)
        assert CANONICAL.fullmatch(value)
        assert parsed.version == 4
        assert parsed.variant == uuid.RFC_4122
        assert str(parsed) == value


def test_generate_never_repeats() -> None:
    values = {RunId.generate().value for _ in range(20_000)}
    assert len(values) == 20_000


def test_generated_ids_use_every_variant_digit() -> None:
    """The variant digit is drawn from the random bytes, not fixed to one value."""
    digits = {RunId.generate().value[19] for _ in range(2_000)}
    assert digits == set("89ab")


@pytest.mark.skipif(not hasattr(os, "fork"), reason="os.fork is POSIX only")
def test_a_forked_child_never_repeats_its_parents_ids() -> None:
    reader, writer = os.pipe()
    pid = os.fork()
    if pid == 0:  # pragma: no cover - runs in the child process
        os.close(reader)
        os.write(writer, "\n".join(RunId.generate().value for _ in range(200)).encode())
        os._exit(0)
    os.close(writer)
    parent_ids = {RunId.generate().value for _ in range(200)}
    with os.fdopen(reader) as pipe:
        child_ids = set(pipe.read().split("\n"))
    os.waitpid(pid, 0)
    assert len(child_ids) == 200
    assert not parent_ids & child_ids


def test_seed_constructor_keeps_the_value() -> None:
    value = str(uuid.uuid4())
    run_id = RunId(value)
    assert run_id.value == value
    assert str(run_id) == value
    assert repr(run_id) == f"RunId({value!r})"
    assert run_id.short() == value[:8]


@pytest.mark.parametrize(
    "form",
    [
        lambda u: str(u),
        lambda u: str(u).upper(),
        lambda u: u.hex,
        lambda u: u.hex.upper(),
        lambda u: "{" + str(u) + "}",
        lambda u: u.urn,
        lambda u: "urn:uuid:" + str(u).upper(),
        lambda u: "urn:uuid:" + u.hex,
        lambda u: "{" + u.hex.upper() + "}",
    ],
)
def test_from_string_takes_the_documented_forms(form: object) -> None:
    u = uuid.uuid4()
    text = form(u)  # type: ignore[operator]
    assert RunId.from_string(text).value == str(u)
    assert RunId(text).value == str(u)


@pytest.mark.parametrize(
    "bad",
    [
        "",
        "not-a-uuid",
        "\u0661" * 32,  # Arabic-Indic digits: uuid.UUID takes them
        "0x" + "a" * 30,  # int(..., 16) takes a 0x prefix
        "_".join(["aaaaaaa"] * 4) + "aaaa",  # underscores between digits
        " " + "a" * 31,
        "+" + "a" * 31,
        "{" + "a" * 32,
        "a" * 32 + "}",
        "a" * 31,
        "a" * 33,
        "aaaaaaaa-aaaa-aaaa-aaaa-aaaaaaaaaaaa\n",
        "aaaaaaaaaaaa-aaaa-aaaa-aaaa-aaaaaaaa",  # hyphens in the wrong places
        "urn:uuid:{aaaaaaaa-aaaa-aaaa-aaaa-aaaaaaaaaaaa}",
        "URN:UUID:aaaaaaaa-aaaa-aaaa-aaaa-aaaaaaaaaaaa",  # uuid.UUID takes the prefix lowercase
        "Urn:uuid:aaaaaaaa-aaaa-aaaa-aaaa-aaaaaaaaaaaa",
    ],
)
def test_from_string_rejects_anything_else(bad: str) -> None:
    with pytest.raises(ValueError, match="is not a UUID"):
        RunId.from_string(bad)


def test_error_shows_the_value_escaped_and_cut_short() -> None:
    bad = "\x1b[31m" + "\u0661" * 500
    with pytest.raises(ValueError, match="is not a UUID") as info:
        RunId.from_string(bad)
    message = str(info.value)
    assert "\x1b" not in message
    assert "\\x1b[31m" in message
    assert "\\u0661" in message
    assert "(505 characters)" in message
    assert len(message) < 300
    assert "RunId.generate()" in message


def test_a_non_string_is_a_type_error_naming_the_type() -> None:
    with pytest.raises(TypeError, match="must be a str holding a UUID, got int"):
        RunId.from_string(42)  # type: ignore[arg-type]
    with pytest.raises(TypeError, match="got UUID"):
        RunId(uuid.uuid4())  # type: ignore[arg-type]


@given(st.uuids())
def test_every_uuid_round_trips_through_each_form(u: uuid.UUID) -> None:
    for text in (str(u), u.hex, u.urn, "{" + str(u).upper() + "}"):
        assert RunId.from_string(text).value == str(u)


_FORMS = (
    str,
    lambda u: u.hex,
    lambda u: "{" + str(u) + "}",
    lambda u: "{" + u.hex + "}",
    lambda u: u.urn,
    lambda u: "urn:uuid:" + u.hex,
)
# Characters a mutation swaps in: the grammar's own punctuation, what int(..., 16) tolerates,
# and whatever else hypothesis draws.
_PUNCTUATION = "-{}:_ \t\nxXgGzZ+0aF"
# Other scripts' digits, which str.isdigit() and int() take: Arabic-Indic, Devanagari, fullwidth.
_UNICODE_DIGITS = ("\u0660", "\u0966", "\uff10")


@st.composite
def _uuid_texts(draw: st.DrawFn) -> str:
    """A UUID in a documented form, maybe recased, maybe mutated at one character."""
    text: str = draw(st.sampled_from(_FORMS))(draw(st.uuids()))
    case = draw(st.sampled_from(("keep", "upper", "swap", "mixed")))
    if case == "upper":
        text = text.upper()
    elif case == "swap":
        text = text.swapcase()
    elif case == "mixed":
        flips = draw(st.lists(st.booleans(), min_size=len(text), max_size=len(text)))
        text = "".join(c.swapcase() if f else c for c, f in zip(text, flips, strict=True))
    mutation = draw(st.sampled_from(("none", "replace", "insert", "delete", "digit")))
    at = draw(st.integers(0, len(text) - 1))
    if mutation in ("replace", "insert"):
        new = draw(st.sampled_from(_PUNCTUATION) | st.characters())
        text = text[:at] + new + text[at + (mutation == "replace") :]
    elif mutation == "delete":
        text = text[:at] + text[at + 1 :]
    elif mutation == "digit":
        digits = [i for i, c in enumerate(text) if c in "0123456789"]
        if digits:
            i = digits[draw(st.integers(0, len(digits) - 1))]
            zero = ord(draw(st.sampled_from(_UNICODE_DIGITS)))
            text = text[:i] + chr(zero + int(text[i])) + text[i + 1 :]
    return text


def _documented(text: str) -> bool:
    """Whether ``text`` is in a form the README documents, spelled out apart from the module."""
    body = text
    if body.startswith("urn:uuid:"):
        body = body[len("urn:uuid:") :]
    elif body.startswith("{") and body.endswith("}"):
        body = body[1:-1]
    groups = body.split("-")
    if len(groups) == 1:
        lengths = [32]
    elif len(groups) == 5:
        lengths = [8, 4, 4, 4, 12]
    else:
        return False
    return [len(g) for g in groups] == lengths and all(
        c in string.hexdigits for c in body if c != "-"
    )


def _uuid_accepts(text: str) -> bool:
    try:
        uuid.UUID(text)
    except ValueError:
        return False
    return True


def _we_accept(text: str) -> bool:
    try:
        RunId.from_string(text)
    except ValueError:
        return False
    return True


@settings(derandomize=True, max_examples=500)
@given(_uuid_texts())
def test_from_string_accepts_exactly_the_documented_forms_uuid_accepts(text: str) -> None:
    """Accepted iff uuid.UUID takes it, it is ASCII and in a documented form; stored canonical."""
    expected = _uuid_accepts(text) and text.isascii() and _documented(text)
    try:
        run_id = RunId.from_string(text)
    except ValueError:
        assert not expected, text
        return
    assert expected, text
    assert run_id.value == str(uuid.UUID(text))
    assert CANONICAL.fullmatch(run_id.value)


@pytest.mark.parametrize(
    ("condition", "why"),
    [
        (lambda t: _we_accept(t) and not CANONICAL.fullmatch(t), "accepted, not canonical"),
        (lambda t: _uuid_accepts(t) and not t.isascii(), "uuid.UUID takes Unicode digits"),
        (lambda t: t.startswith("URN:UUID:"), "an upper-case prefix, which uuid.UUID refuses"),
        (lambda t: _uuid_accepts(t) and t.isascii() and not _documented(t), "undocumented"),
    ],
)
def test_the_generated_texts_reach_each_side_of_the_rule(condition: Any, why: str) -> None:
    """The property above is not vacuous: its inputs reach every case it tells apart."""
    # Generation alone: finding one example is the point, shrinking it would only cost time.
    quick = settings(derandomize=True, max_examples=5000, phases=[Phase.generate])
    find(_uuid_texts(), condition, settings=quick)


@given(st.from_regex(r"[0-9a-fA-F]{32}", fullmatch=True))
def test_any_32_hex_digits_are_taken(text: str) -> None:
    assert RunId.from_string(text).value == str(uuid.UUID(text))


def test_equality_and_hash_are_by_value_not_lineage() -> None:
    parent = RunId.generate()
    value = str(uuid.uuid4())
    plain = RunId(value)
    with_parent = RunId(value, parent=parent)
    assert plain == with_parent
    assert hash(plain) == hash(with_parent)
    assert len({plain, with_parent, RunId.from_string(value.upper())}) == 1
    assert plain != RunId.generate()
    assert plain != value  # a RunId is not equal to its text


def test_run_id_attributes_are_read_only() -> None:
    run_id = RunId.generate()
    for name in ("value", "parent", "root"):
        with pytest.raises(AttributeError):
            setattr(run_id, name, RunId.generate())
    with pytest.raises(AttributeError):
        run_id.extra = 1  # type: ignore[attr-defined]
    assert not hasattr(run_id, "__dict__")


def test_lineage_of_generated_runs() -> None:
    root = RunId.generate()
    child = root.child()
    grandchild = RunId.generate(parent=child)
    assert root.parent is None
    assert root.root is root
    assert child.parent == root
    assert child.root == root
    assert grandchild.parent == child
    assert grandchild.root == root
    assert grandchild.parent.parent == root


def test_lineage_given_explicitly_with_an_unknown_parent_chain() -> None:
    """Lineage that arrives from outside: parent and root known, the parent's parent not."""
    root = RunId.generate()
    parent = RunId(str(uuid.uuid4()), root=root)
    run = RunId(str(uuid.uuid4()), parent=parent)
    assert parent.parent is None
    assert parent.root == root
    assert run.root == root
    assert RunId(str(uuid.uuid4()), parent=parent.value).parent == parent


def test_lineage_arguments_are_checked() -> None:
    value = str(uuid.uuid4())
    with pytest.raises(ValueError, match="cannot be its own parent"):
        RunId(value, parent=value)
    assert RunId(value, root=value).root.value == value
    with pytest.raises(TypeError, match="parent must be a RunId, a str or None, got int"):
        RunId(value, parent=1)  # type: ignore[arg-type]
    with pytest.raises(TypeError, match="parent must be a RunId or None, got str"):
        RunId.generate(parent=value)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="is not a UUID"):
        RunId(value, root="nope")


def test_uuid_property() -> None:
    run_id = RunId.generate()
    assert run_id.uuid == uuid.UUID(run_id.value)


def test_pickle_and_copy_keep_the_lineage() -> None:
    child = RunId.generate().child()
    for clone in (pickle.loads(pickle.dumps(child)), copy.copy(child), copy.deepcopy(child)):
        assert clone == child
        assert clone.parent == child.parent
        assert clone.root == child.root


def test_from_env_reads_the_run_and_its_lineage() -> None:
    root, parent, run = (str(uuid.uuid4()) for _ in range(3))
    env = {"AGENT_RUN_ID": run, "AGENT_PARENT_RUN_ID": parent, "AGENT_ROOT_RUN_ID": root}
    run_id = RunId.from_env(env)
    assert run_id is not None
    assert run_id.value == run
    assert run_id.parent is not None
    assert run_id.parent.value == parent
    assert run_id.root.value == root
    assert run_id.parent.root.value == root


def test_from_env_without_lineage_and_when_absent() -> None:
    value = str(uuid.uuid4())
    run_id = RunId.from_env({"AGENT_RUN_ID": value.upper()})
    assert run_id is not None
    assert run_id.value == value
    assert run_id.parent is None
    assert RunId.from_env({}) is None
    assert RunId.from_env({"AGENT_RUN_ID": ""}) is None


def test_from_env_defaults_to_os_environ(monkeypatch: pytest.MonkeyPatch) -> None:
    value = str(uuid.uuid4())
    monkeypatch.setenv("AGENT_RUN_ID", value)
    monkeypatch.delenv("AGENT_PARENT_RUN_ID", raising=False)
    monkeypatch.delenv("AGENT_ROOT_RUN_ID", raising=False)
    assert RunId.from_env() == RunId(value)


def test_from_env_drops_spaces_and_tabs_and_takes_a_blank_variable_as_unset() -> None:
    """The run headers' rule: optional whitespace around the id; blank is as good as unset."""
    value = str(uuid.uuid4())
    env = {"AGENT_RUN_ID": f" {value}\t", "AGENT_PARENT_RUN_ID": "  ", "AGENT_ROOT_RUN_ID": "\t"}
    run = RunId.from_env(env)
    assert run == RunId(value)
    assert run.parent is None
    assert RunId.from_env({"AGENT_RUN_ID": " \t "}) is None


def test_from_env_names_the_malformed_variable() -> None:
    with pytest.raises(ValueError, match=r"\$AGENT_PARENT_RUN_ID 'oops' is not a run id"):
        RunId.from_env({"AGENT_RUN_ID": str(uuid.uuid4()), "AGENT_PARENT_RUN_ID": "oops"})
    with pytest.raises(ValueError, match=r"\$AGENT_RUN_ID 'oops' is not a run id"):
        RunId.from_env({"AGENT_RUN_ID": "oops"})
    with pytest.raises(ValueError, match=r"\$AGENT_ROOT_RUN_ID"):
        RunId.from_env({"AGENT_RUN_ID": str(uuid.uuid4()), "AGENT_ROOT_RUN_ID": "oops"})


@pytest.mark.parametrize(
    "text",
    [
        "00000000-0000-0000-0000-000000000000",  # placeholders would merge unrelated runs
        "FFFFFFFF-FFFF-FFFF-FFFF-FFFFFFFFFFFF",
        "{0b6f5d3e-2c1a-4e8b-9f7d-5a4c3b2a1908}",  # forms for humans, not for the wire
        "urn:uuid:0b6f5d3e-2c1a-4e8b-9f7d-5a4c3b2a1908",
        "0b6f5d3e-2c1a-4e8b-9f7d-5a4c3b2a1908\n",
    ],
)
@pytest.mark.parametrize("name", ["AGENT_RUN_ID", "AGENT_PARENT_RUN_ID", "AGENT_ROOT_RUN_ID"])
def test_from_env_takes_only_what_the_run_headers_take(name: str, text: str) -> None:
    env = {"AGENT_RUN_ID": str(uuid.uuid4()), name: text}
    with pytest.raises(ValueError, match=rf"\${name} .* is not a run id"):
        RunId.from_env(env)


def test_from_env_takes_32_hex_digits_in_any_case_as_headers_do() -> None:
    run, parent = uuid.uuid4(), uuid.uuid4()
    env = {"AGENT_RUN_ID": run.hex.upper(), "AGENT_PARENT_RUN_ID": parent.hex}
    run_id = RunId.from_env(env)
    assert run_id is not None
    assert run_id.value == str(run)
    assert run_id.parent == RunId(str(parent))
    assert run_id.root == run_id.parent


def test_seed_snippet_runs_as_written() -> None:
    """The user's description: generate, short, str, repr, from_string."""
    run_id = RunId.generate()
    assert len(run_id.short()) == 8
    assert RunId.from_string(str(run_id)) == run_id
    assert repr(run_id).startswith("RunId('")
    assert sys.getsizeof(run_id) < 100  # slots: no per-instance dict


def test_show_value_escapes_bytes_and_cuts_them_short() -> None:
    assert show_value(b"\r\nX-Evil: 1") == "b'\\r\\nX-Evil: 1'"
    assert show_value(b"a" * 100).endswith("... (100 characters)")
    assert show_value(None) == "None"


def test_show_value_cuts_a_long_non_ascii_value_between_escapes_and_marks_the_cut() -> None:
    assert show_value("\u0661" * 32) == "'" + "\\u0661" * 6 + "'... (32 characters)"


def test_show_value_escapes_a_short_value_whole_without_a_mark() -> None:
    assert show_value("caf\u00e9") == "'caf\\xe9'"
    assert show_value("a" * 40) == "'" + "a" * 40 + "'"


def test_show_value_marks_a_cut_forced_by_escapes_alone() -> None:
    """40 characters fit raw, but not once one of them is escaped: the cut is still marked."""
    assert show_value("x" * 39 + "\u00e9") == "'" + "x" * 39 + "'... (40 characters)"


def test_show_value_cuts_the_repr_of_an_object_and_marks_it() -> None:
    shown = show_value(["\u00e9"] * 30)
    assert shown.startswith("['\\xe9', ")
    assert shown.endswith("...")
    assert shown.isascii()
    assert len(shown) <= 45
    assert show_value(("a",)) == "('a',)"


def test_from_string_stores_a_plain_str_for_a_str_subclass() -> None:
    class Text(str):
        pass

    value = str(uuid.uuid4())
    for text in (Text(value), Text(value.upper())):
        run_id = RunId.from_string(text)
        assert type(run_id.value) is str
        assert type(str(run_id)) is str
        assert type(RunId(text).value) is str
