"""Specs' behaviour that only the pages (AppTest, browser) exercised, held here where
``scripts/mutation specs`` runs it: the link token of ``?net=``, spec files, the size cap.

Each test names the mutants it kills (``scripts/mutation specs results``, docs/testing.md).
Expected values come from the standard library (``base64``, ``zlib``, ``json``), from
hand-made inputs, or from the documented caps (``CNNVIZ_MAX_SPEC_KB``).
"""
from __future__ import annotations

import base64
import json
import re
import zlib
from dataclasses import MISSING
from pathlib import Path

import pytest

from cnnviz.errors import SpecError
from cnnviz.presets import PRESETS
from cnnviz.specs import (CustomSpec, LeNetSpec, ResNetSpec, check_spec_size, load_spec_file,
                          spec_from_json, spec_to_dict, spec_to_json)
from cnnviz.specs import custom as L
from cnnviz.specs.url import (MAX_JSON_BYTES, MAX_TOKEN_CHARS, spec_from_token, spec_to_token,
                              text_to_token)


def message(call, *args) -> str:
    with pytest.raises(SpecError) as info:
        call(*args)
    return str(info.value)


def unpack(token: str) -> bytes:
    """A token read back with the standard library alone: URL-safe base64 whose '=' padding
    was dropped, around a zlib stream."""
    return zlib.decompress(base64.urlsafe_b64decode(token + "=" * (-len(token) % 4)))


# Specs whose tokens have lengths of every remainder modulo 4 (0, 2, 3: base64 never leaves 1),
# so every amount of dropped padding is read back.
SPECS = [PRESETS[name].spec for name in PRESETS] + [
    LeNetSpec(), ResNetSpec(num_classes=7), CustomSpec(in_channels=3, layers=(
        L.Conv(8, 3, 1, 1), L.ReLU(), L.AdaptiveAvgPool(), L.Flatten(), L.Linear(8, 5)))]


def test_a_token_is_compact_json_zlib_packed_in_url_safe_base64_without_padding():
    """Kills the url mutants that change the token's format: the separators (a longer link),
    the encoding, the padding that is stripped, the base64 alphabet."""
    remainders = set()
    for spec in SPECS:
        token = spec_to_token(spec)
        remainders.add(len(token) % 4)
        # only the characters a URL carries as they are: no '+', '/' or '='
        assert re.fullmatch(r"[A-Za-z0-9_-]+", token), token
        data = json.loads(unpack(token))
        assert data == spec_to_dict(spec)
        # compact: no blank after ',' or ':' (json.dumps's default puts one after each)
        assert b", " not in unpack(token) and b'": ' not in unpack(token)
        assert spec_from_token(token) == spec
    assert remainders == {0, 2, 3}, remainders


def test_text_and_bytes_make_the_same_token_and_any_text_round_trips():
    """Kills text_to_token's mutants (str vs bytes, the compression, the strip of '=')."""
    text = '{"family": "lenet"}'
    assert text_to_token(text) == text_to_token(text.encode())
    assert unpack(text_to_token("any text é")) == "any text é".encode()
    assert spec_from_token(text_to_token(text)) == LeNetSpec()


def test_a_token_at_the_length_cap_is_read_and_one_character_more_is_refused():
    """Kills the mutants of the length check (> against >=, the cap, the message)."""
    # A valid token padded to exactly the cap with a second zlib stream's worth of junk is
    # damaged, not too long: the cap itself is allowed.
    at_cap = "A" * MAX_TOKEN_CHARS
    assert message(spec_from_token, at_cap) == "the network in the link is damaged"
    assert message(spec_from_token, at_cap + "A") == "the network in the link is too long"


@pytest.mark.parametrize("token, why", [
    ("!!!!", "not base64"),
    ("a+b/", "the standard alphabet, not the URL-safe one"),
    (base64.urlsafe_b64encode(b"not a zlib stream").decode(), "not zlib"),
    (base64.urlsafe_b64encode(zlib.compress(b'{"family": "lenet"}')[:-3]).decode(),
     "a zlib stream cut short"),
    ("A", "one character: no base64 length leaves a remainder of 1"),
])
def test_a_damaged_token_says_damaged(token, why):
    """Kills the mutants that drop validate=True or the altchars, the decompressor's checks,
    and the check for an unfinished stream."""
    assert message(spec_from_token, token) == "the network in the link is damaged", why


def test_json_of_exactly_the_inflated_cap_is_read_and_one_byte_more_is_refused():
    """Kills the mutants of the inflated-size cap (the +1 read ahead, > against >=)."""
    spec_json = json.dumps(spec_to_dict(LeNetSpec()))
    at_cap = spec_json + " " * (MAX_JSON_BYTES - len(spec_json))
    assert len(at_cap.encode()) == MAX_JSON_BYTES
    assert spec_from_token(text_to_token(at_cap)) == LeNetSpec()
    assert message(spec_from_token, text_to_token(at_cap + " ")) == (
        "the network in the link is too large")


def test_a_token_decodes_to_every_problem_of_its_spec():
    """A token's JSON is validated like any spec: the problem is named with its path."""
    token = text_to_token('{"family": "lenet", "input_size": 0}')
    assert message(spec_from_token, token) == "input_size: must be ≥ 1, got 0"


def test_a_spec_file_loads_and_a_folder_or_a_missing_file_is_named(tmp_path):
    """Kills load_spec_file's mutants: the path it reads, the folder and unreadable-file
    messages."""
    spec = ResNetSpec(num_classes=7)
    path = tmp_path / "net.json"
    path.write_text(spec_to_json(spec))
    assert load_spec_file(path) == spec
    assert load_spec_file(str(path)) == spec
    assert message(load_spec_file, tmp_path) == f"{tmp_path} is a folder, not a config file"
    missing = tmp_path / "missing.json"
    assert message(load_spec_file, missing) == (
        f"cannot read {missing}: No such file or directory")


def test_a_spec_file_at_the_cap_loads_and_one_byte_over_is_refused_unread(tmp_path,
                                                                           monkeypatch):
    """Kills the mutants of the cap (KB = 1024 bytes, > against >=, the bytes read ahead):
    with CNNVIZ_MAX_SPEC_KB=1 a file of 1024 bytes loads and one of 1025 does not."""
    monkeypatch.setenv("CNNVIZ_MAX_SPEC_KB", "1")
    text = spec_to_json(LeNetSpec())
    at_cap = tmp_path / "at_cap.json"
    at_cap.write_text(text + " " * (1024 - len(text)))
    assert at_cap.stat().st_size == 1024
    assert load_spec_file(at_cap) == LeNetSpec()
    over = tmp_path / "over.json"
    over.write_text(text + " " * (1024 * 1024))  # a MB over: only 1025 bytes are read
    said = message(load_spec_file, over)
    assert said.startswith("the spec is 1,025 bytes: "), said
    assert "CNNVIZ_MAX_SPEC_KB" in said


def test_the_size_check_names_the_size_its_unit_and_the_cap(monkeypatch):
    """Kills check_spec_size's mutants: the unit, the comparison and the KB rounded up."""
    monkeypatch.setenv("CNNVIZ_MAX_SPEC_KB", "2")
    check_spec_size(2048)  # exactly the cap: allowed
    said = message(check_spec_size, 2049)
    # 2,049 bytes are 3 KB rounded up (2049 / 1024 = 2.0009...)
    assert said.startswith("the spec is 2,049 bytes: Size of a spec (JSON) upload is 3 KB"), said
    assert message(check_spec_size, 5000, "characters").startswith(
        "the spec is 5,000 characters: ")
    # JSON text is measured in characters, bytes in bytes
    assert message(spec_from_json, " " * 2049).startswith("the spec is 2,049 characters: ")
    assert message(spec_from_json, b" " * 2049).startswith("the spec is 2,049 bytes: ")


@pytest.mark.parametrize("text", [
    "", b"", b" \t\r\n", "{", b'{"family": "\xff"}', '{"family": "lenet", "family": "vgg"}',
    "[" * 100_000 + "]" * 100_000, '{"input_size": ' + "9" * 5000 + "}", "3",
])
def test_a_problem_with_the_whole_text_has_the_empty_path(text):
    """Kills the mutants that give a whole-text problem the path None instead of "": a
    Problem's path is a string (the editor and the CLI join it to field names)."""
    with pytest.raises(SpecError) as info:
        spec_from_json(text)
    assert [p.path for p in info.value.problems] == [""]


def test_an_empty_text_is_said_empty_and_text_that_is_not_utf8_is_said_so():
    """Kills the mutants of the empty-text message, of the bytes stripped from a byte text,
    and of the UnicodeDecodeError branch (which has no line or column)."""
    empty = "not valid JSON at line 1 column 1: Expecting value (the text is empty)"
    assert message(spec_from_json, "") == empty
    assert message(spec_from_json, b" \t\r\n") == empty
    # 'X' is no JSON whitespace: json's own error, not "empty"
    assert message(spec_from_json, b"XX") == (
        "not valid JSON at line 1 column 1: Expecting value")
    # UTF-8 is detected from the first bytes; the lone 0xff byte inside cannot be decoded
    assert message(spec_from_json, b'{"family": "\xff"}') == "not valid JSON: not UTF-8 text"


def test_a_duplicate_key_is_named_even_when_it_is_not_the_first_key():
    """Kills _no_duplicate_keys's mutant that names the first key instead of the repeated
    one."""
    assert message(spec_from_json, '{"family": "lenet", "input_size": 3, "input_size": 4}') == (
        "duplicate key 'input_size' in the JSON")


def test_a_spec_file_is_written_one_key_a_line_indented_by_two():
    """Kills spec_to_json's indent mutants: a saved spec is meant to be read and edited by
    hand (docs/guide.md), one key a line, two spaces per level, a newline at the end."""
    text = spec_to_json(LeNetSpec())
    lines = text.splitlines()
    assert lines[0] == "{" and lines[1] == '  "family": "lenet",' and text.endswith("}\n")
    depth = 0  # brackets open before the line: its indent is two spaces for each
    for line in lines:
        body = line.lstrip(" ")
        closing = body[0] in "]}"
        assert len(line) - len(body) == 2 * (depth - closing), line
        depth += sum(body.count(c) for c in "[{") - sum(body.count(c) for c in "]}")
    assert depth == 0


def test_a_knob_without_a_label_is_labelled_by_its_field_name_with_spaces():
    """Kills knob_of's mutants (the label kept or replaced, the '_' → ' ' rule)."""
    import dataclasses

    from cnnviz.specs.fields import knob_of
    fields = {f.name: f for f in dataclasses.fields(LeNetSpec)}
    assert knob_of(fields["in_channels"]).label == "in channels"
    assert knob_of(fields["input_size"]).label == "input size"
    # a label given in the knob is kept as it is
    assert knob_of(fields["num_classes"]).label == fields["num_classes"].metadata["knob"].label


def test_a_value_is_shown_as_json_spells_it_and_cut_after_forty_characters():
    """Kills _show's and _type_name's mutants: NaN as JSON writes it (allow_nan), accents as
    they are (ensure_ascii=False), a value of 40 characters whole and one of 41 cut to 37 and
    '...', and the name of a string type."""
    from cnnviz.specs import spec_from_dict

    def problems(data):
        with pytest.raises(SpecError) as info:
            spec_from_dict(data)
        return [str(p) for p in info.value.problems]

    assert problems({"family": "lenet", "input_size": float("nan")}) == [
        "input_size: must be an integer, got NaN"]
    assert problems({"family": "vgg", "activation": 3}) == [
        "activation: must be a string, got 3"]
    assert problems({"family": "vgg", "activation": "relü"}) == [
        'activation: must be one of relu, sigmoid, gelu; got "relü"']
    forty = "a" * 38  # with its two quotes: 40 characters
    assert problems({"family": "vgg", "activation": forty}) == [
        f'activation: must be one of relu, sigmoid, gelu; got "{forty}"']
    forty_one = "a" * 39
    assert problems({"family": "vgg", "activation": forty_one}) == [
        f'activation: must be one of relu, sigmoid, gelu; got "{forty_one[:36]}...']


def test_pool_padding_over_half_an_even_kernel_names_the_half():
    """Kills the _Pool.check mutant that prints kernel // 3: for kernel 4 the half is 2."""
    from cnnviz.specs import spec_from_dict
    with pytest.raises(SpecError) as info:
        spec_from_dict({"family": "custom", "layers": [
            {"type": "max_pool", "kernel": 4, "padding": 3}, {"type": "flatten"},
            {"type": "linear", "in_features": 1, "out_features": 2}]})
    assert [str(p) for p in info.value.problems] == [
        "layers[0].padding: must be at most half the kernel (2), got 3"]


# docs/config.md: "Their defaults are `in_channels` 1 and `num_classes` 10 in every family, and
# `input_size` 28 for `lenet`, 96 for `googlenet`, `resnet` and `densenet`, and 224 for the
# others."
DOCUMENTED_INPUT_SIZE = {"lenet": 28, "alexnet": 224, "vgg": 224, "nin": 224, "googlenet": 96,
                         "resnet": 96, "densenet": 96}


@pytest.mark.parametrize("family", sorted(DOCUMENTED_INPUT_SIZE))
def test_every_family_has_the_documented_defaults(family):
    """Kills the knob helpers' default mutants (in_channels 2, num_classes 11): the defaults
    are the ones docs/config.md promises."""
    from cnnviz.specs import SPEC_CLASSES
    spec = SPEC_CLASSES[family]()
    assert (spec.in_channels, spec.num_classes, spec.input_size) == (
        1, 10, DOCUMENTED_INPUT_SIZE[family])


@pytest.mark.parametrize("data, expected", [
    # a value that is not an object where a block or a layer is expected
    ({"family": "custom", "layers": [3]}, "layers[0]: must be an object, got 3"),
    ({"family": "lenet", "convs": [3]}, "convs[0]: must be an object, got 3"),
    # a key named like a tag in a class that has none
    ({"family": "lenet", "convs": [{"out_channels": 6, "kernel": 5, "type": "conv"}]},
     "convs[0].type: unknown key (known keys: out_channels, kernel, stride, padding, pool)"),
    # an optional integer (None or an integer) with a wrong value keeps its path
    ({"family": "custom", "layers": [{"type": "max_pool", "kernel": 2, "stride": "x"},
                                     {"type": "flatten"},
                                     {"type": "linear", "in_features": 1, "out_features": 2}]},
     'layers[0].stride: must be an integer, got "x"'),
    # a number field takes numbers only, true and "0.5" are no numbers
    ({"family": "vgg", "dropout": True}, "dropout: must be a number, got true"),
    ({"family": "vgg", "dropout": "0.5"}, 'dropout: must be a number, got "0.5"'),
    # a float knob bounded by lt < 1 gets no integer cap on top (INT_MAX is for integers)
    ({"family": "vgg", "dropout": 1e6}, "dropout: must be < 1.0, got 1000000.0"),
])
def test_one_problem_with_its_path(data, expected):
    """Kills the _parse, _parse_tagged, _parse_dataclass and Knob.upper mutants that lose a
    problem's path or message, accept a non-number as a number, or cap a float at INT_MAX."""
    from cnnviz.specs import spec_from_dict
    with pytest.raises(SpecError) as info:
        spec_from_dict(data)
    assert [str(p) for p in info.value.problems] == [expected]


# -- docs/config.md's tables against the spec classes ------------------------------------------

CONFIG_DOC = Path(__file__).resolve().parents[1] / "docs" / "config.md"


def doc_tables() -> list[tuple[str, int, list[list[str]]]]:
    """(family, index of the table in its section, rows) of every "field | type | default"
    table of docs/config.md; a row is its cells without the pipes."""
    tables, family, index, rows = [], None, 0, None
    for line in CONFIG_DOC.read_text().splitlines():
        heading = re.fullmatch(r"## `(\w+)`", line)
        if heading:
            family, index = heading.group(1), 0
        if family and re.match(r"\| field\s*\| type\s*\| default", line):
            rows = []
            tables.append((family, index, rows))
            index += 1
        elif rows is not None and line.startswith("| `"):
            rows.append([cell.strip() for cell in line.strip("|").split(" | ")])
        elif rows is not None and not line.startswith("|"):
            rows = None
    return tables


def table_class(family: str, index: int) -> type:
    """The spec class a table describes: a family's own fields first, then its objects."""
    from cnnviz.specs import SPEC_CLASSES, InceptionCfg, NiNBlockCfg
    from cnnviz.specs.families import ConvLayer
    if index == 0:
        return SPEC_CLASSES[family]
    return {"lenet": ConvLayer, "nin": NiNBlockCfg, "googlenet": InceptionCfg}[family]


def field_default(cls: type, name: str):
    import dataclasses

    from cnnviz.specs.fields import to_dict
    f = {f.name: f for f in dataclasses.fields(cls)}[name]
    return dataclasses.MISSING if f.default is dataclasses.MISSING else to_dict(f.default)


def test_the_documented_defaults_are_the_specs_defaults():
    """Kills the knob helpers' default mutants (stride 2, padding 1, adaptive_pool 1, a stem of
    65 channels, ...): every default docs/config.md states as a value, or as *required*, is the
    spec class's."""
    checked = 0
    for family, index, rows in doc_tables():
        cls = table_class(family, index)
        for name, _type, default, *_ in rows:
            name = name.strip("`")
            if default == "required":
                expected = "required"
            elif re.fullmatch(r"`[^`]+`", default):
                expected = json.loads(default.strip("`"))
            else:  # described in words ("the book's 2 blocks"): examples cover those
                continue
            got = field_default(cls, name)
            if got == [] and expected == "required":  # custom's layers: () that must not be
                got = MISSING  # empty, so a config without it is refused all the same
            assert ("required" if got is MISSING else got) == expected, (family, name)
            checked += 1
    assert checked >= 79, checked  # every row with a value or *required*: none skipped


def test_the_documented_bounds_and_choices_are_the_knobs():
    """Kills the knob helpers' bound mutants (a dense width of at least 2, a list allowed
    empty, no choices for pool): "integer ≥ 1", "list of integers ≥ 1", "non-empty",
    "0 ≤ p < 1", `"avg"` or `"max"` in the type column are the knob's min, its item's min,
    nonempty, min and lt, choices."""
    import dataclasses

    from cnnviz.specs.fields import knob_of
    checked = 0
    for family, index, rows in doc_tables():
        cls = table_class(family, index)
        fields = {f.name: knob_of(f) for f in dataclasses.fields(cls)}
        for name, type_, *_ in rows:
            k = fields[name.strip("`")]
            if re.fullmatch(r"(odd )?integer ≥ \d+", type_):
                assert k.min == int(type_.split("≥ ")[1]), (family, name)
            elif m := re.fullmatch(r"(non-empty )?list of integers ≥ (\d+)", type_):
                assert k.item.min == int(m.group(2)) and k.nonempty == bool(m.group(1)), (
                    family, name)
            elif type_ == "number, 0 ≤ p < 1":
                assert (k.min, k.lt) == (0, 1), (family, name)
            elif type_ == "number, 0 < x ≤ 1":
                assert (k.gt, k.max) == (0, 1), (family, name)
            elif type_.startswith("non-empty list"):
                assert k.nonempty, (family, name)
            elif re.fullmatch(r'(`"\w+"`(, | or )?)+', type_):  # `"avg"` or `"max"`
                assert set(k.choices) == set(re.findall(r'"(\w+)"', type_)), (family, name)
            else:
                continue
            checked += 1
    assert checked >= 72, checked  # every row with a bound or choices of these forms


def test_the_documented_layer_defaults_are_the_layers():
    """Kills the custom layers' default mutants: the "fields (default)" column of docs/config.md's
    layer table, e.g. `stride` (1), `bias` (`true`), `output_size` (1), `p` (0.5; ...)."""
    from cnnviz.specs import LAYER_TYPES
    text = CONFIG_DOC.read_text()
    table = text[text.index("### Layer types"):text.index("### Chain rules")]
    checked = 0
    for line in table.splitlines():
        cells = [c.strip() for c in line.strip("|").split(" | ")]
        if not line.startswith("| `") or cells[1] in ("none", "as `max_pool`"):
            continue
        for type_ in re.findall(r"`(\w+)`", cells[0]):
            for name, said in re.findall(r"`(\w+)` \(([^)]*(?:\([^)]*\))?[^)]*)\)", cells[1]):
                value = re.split(r"[,;:]", said)[0].strip().strip("`")
                expected = "required" if value == "required" else json.loads(value)
                got = field_default(LAYER_TYPES[type_], name)
                assert ("required" if got is MISSING else got) == expected, (type_, name)
                checked += 1
    assert checked >= 43, checked  # every field of the table with its default


def whole_text_paths(call, *args) -> list:
    with pytest.raises(SpecError) as info:
        call(*args)
    return [p.path for p in info.value.problems]


def test_link_file_and_size_problems_have_the_empty_path(tmp_path, monkeypatch):
    """Kills the mutants that give the link's, the file's and the size cap's problems the path
    None instead of "" (a Problem's path is a string)."""
    monkeypatch.setenv("CNNVIZ_MAX_SPEC_KB", "1")
    cut_short = base64.urlsafe_b64encode(zlib.compress(b'{"family": "lenet"}')[:-3]).decode()
    for token in ("A" * (MAX_TOKEN_CHARS + 1), "!!!!", "A" * 8, cut_short,
                  text_to_token(" " * (MAX_JSON_BYTES + 1))):
        assert whole_text_paths(spec_from_token, token) == [""], token[:10]
    assert whole_text_paths(load_spec_file, tmp_path) == [""]
    assert whole_text_paths(load_spec_file, tmp_path / "missing.json") == [""]
    assert whole_text_paths(check_spec_size, 1025) == [""]


def test_a_token_with_characters_outside_the_alphabet_is_damaged():
    """Kills the mutants that drop base64's validate=True, which would skip the stray
    characters (a link pasted with a full stop inside) and read the rest."""
    token = spec_to_token(LeNetSpec())
    assert spec_from_token(token) == LeNetSpec()
    half = len(token) // 4 * 2
    assert message(spec_from_token, token[:half] + "!.!." + token[half:]) == (
        "the network in the link is damaged")


def test_a_token_ending_in_x_keeps_its_last_character():
    """Kills text_to_token's mutant that strips 'X' as well as the '=' padding from the end.
    A spec whose token ends in X is searched for with the standard library (base64 of zlib
    at level 9, '=' stripped); with this machine's zlib the first is k = 72104 (0.3 s)."""
    for k in range(200_000):
        spec = LeNetSpec(num_classes=k % 1000 + 1, input_size=k // 1000 + 28)
        text = json.dumps({"family": "lenet", "num_classes": spec.num_classes,
                           "input_size": spec.input_size})
        expected = base64.urlsafe_b64encode(zlib.compress(text.encode(), 9)).decode().rstrip("=")
        if expected.endswith("X"):
            break
    else:
        raise AssertionError("no token of these specs ends in X")
    assert text_to_token(text) == expected
    assert spec_from_token(text_to_token(text)) == spec
