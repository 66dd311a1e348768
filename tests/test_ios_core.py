"""Checks on the iOS sample app that need no Swift toolchain (none is obtainable on CI).

(a) every .swift file under ios_demo/ parses with tree-sitter-swift (no ERROR / MISSING nodes);
(b) the Swift fallback constants (`DetectorDefaults`) equal the Python configuration;
(c) every JSON key the Swift Codable structs declare is present in golden files written by
    `featherface_mobile.golden.write_golden` and in the manifest example of docs/formats.md,
    and each struct's CodingKeys cover exactly its stored properties (what the compiler would check).
"""
from __future__ import annotations

import dataclasses
import json
import re
from dataclasses import dataclass
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
IOS = ROOT / "ios_demo"
CORE_SOURCES = IOS / "FaceDetectorCore" / "Sources" / "FaceDetectorCore"
SWIFT_FILES = sorted(IOS.rglob("*.swift"))


def _swift_parser():
    try:
        import tree_sitter
        import tree_sitter_swift
    except ImportError as e:  # a hard failure: CI must not pass without parsing the Swift sources
        pytest.fail(f"{e}; install the test extras: pip install -e '.[test]' (tree-sitter, tree-sitter-swift)")
    return tree_sitter.Parser(tree_sitter.Language(tree_sitter_swift.language()))


def _parse(path: Path):
    return _swift_parser().parse(path.read_bytes()).root_node


def _walk(node):
    yield node
    for child in node.children:
        yield from _walk(child)


def _syntax_problems(root, label: str) -> list[str]:
    problems = []
    for n in _walk(root):
        if n.type == "ERROR" or n.is_missing:
            what = f"missing {n.type!r}" if n.is_missing else "syntax error"
            snippet = n.text.decode(errors="replace").splitlines()[0][:60] if n.text else ""
            problems.append(f"{label}:{n.start_point[0] + 1}:{n.start_point[1] + 1}: {what} near {snippet!r}")
    return problems


# ---------------------------------------------------------------------------------------------
# (a) syntax


def test_ios_demo_has_the_expected_swift_sources():
    names = {p.relative_to(IOS).as_posix() for p in SWIFT_FILES}
    for required in ("FaceDetectorCore/Package.swift",
                     "FaceDetectorCore/Sources/FaceDetectorCore/Defaults.swift",
                     "FaceDetectorCore/Sources/FaceDetectorCore/Formats.swift",
                     "FaceDetectorCore/Tests/FaceDetectorCoreTests/GoldenVectorTests.swift",
                     "FeatherFaceDemo/FeatherFaceDemoApp.swift",
                     "FeatherFaceDemoTests/BenchmarkPerformanceTests.swift"):
        assert required in names, f"ios_demo/{required} is missing"


@pytest.mark.parametrize("path", SWIFT_FILES, ids=lambda p: p.relative_to(IOS).as_posix())
def test_swift_file_parses(path: Path):
    problems = _syntax_problems(_parse(path), f"ios_demo/{path.relative_to(IOS).as_posix()}")
    assert not problems, "tree-sitter-swift found syntax errors:\n" + "\n".join(problems)


def test_syntax_check_catches_a_broken_file(tmp_path: Path):
    bad = tmp_path / "Broken.swift"
    bad.write_text("struct A {\n    func f() -> Int {\n        return (1 +\n    }\n}\n")
    problems = _syntax_problems(_parse(bad), "Broken.swift")
    assert problems and all(p.startswith("Broken.swift:") for p in problems)


# ---------------------------------------------------------------------------------------------
# Reading Swift declarations from the syntax tree


def _text(node) -> str:
    return node.text.decode()


def _type_declarations(root) -> dict[str, object]:
    """Simple name -> class_declaration node (struct / enum / class), nested ones included."""
    out = {}
    for n in _walk(root):
        if n.type == "class_declaration" and n.child_by_field_name("name") is not None:
            out[_text(n.child_by_field_name("name"))] = n
    return out


def _body(decl):
    return decl.child_by_field_name("body")


def _is_static(prop) -> bool:
    return any(c.type == "modifiers" and re.search(r"\b(static|class)\b", _text(c)) for c in prop.children)


def _literal(node):
    """Value of a Swift literal expression (numbers, booleans, arrays, unary minus)."""
    t = node.type
    if t == "integer_literal":
        return int(_text(node).replace("_", ""), 0)
    if t == "real_literal":
        return float(_text(node).replace("_", ""))
    if t == "boolean_literal":
        return _text(node) == "true"
    if t == "array_literal":
        return [_literal(c) for c in node.children if c.is_named]
    if t == "prefix_expression" and _text(node.child_by_field_name("operation")) == "-":
        return -_literal(node.child_by_field_name("target"))
    raise ValueError(f"not a literal the test understands: {_text(node)!r} ({t}) at line {node.start_point[0] + 1}")


def _static_constants(decl) -> dict[str, object]:
    out = {}
    for prop in _body(decl).children:
        if prop.type == "property_declaration" and _is_static(prop):
            name = _text(prop.child_by_field_name("name"))
            out[name] = _literal(prop.child_by_field_name("value"))
    return out


@dataclass(frozen=True)
class SwiftType:
    name: str  # innermost type name, e.g. "Int", "GoldenFace"
    arrays: int  # nesting depth of [...]
    optional: bool


def _swift_type(node) -> SwiftType:
    optional, arrays = False, 0
    while True:
        if node.type == "type_annotation":
            node = node.child_by_field_name("name")
        elif node.type == "optional_type":
            optional = True
            node = node.child_by_field_name("wrapped")
        elif node.type == "array_type":
            arrays += 1
            node = node.child_by_field_name("name")
        elif node.type == "user_type":
            idents = [c for c in node.children if c.type == "type_identifier"]
            return SwiftType(_text(idents[-1]), arrays, optional)
        else:
            raise ValueError(f"unhandled Swift type {_text(node)!r} ({node.type})")


def _inherits(decl) -> set[str]:
    return {_text(c).split(".")[-1] for c in decl.children if c.type == "inheritance_specifier"}


@dataclass
class CodableStruct:
    name: str
    fields: dict[str, tuple[str, SwiftType]]  # property -> (JSON key, type)
    problems: list[str]


def _codable_structs(paths: list[Path]) -> dict[str, CodableStruct]:
    decls = {}
    for p in paths:
        decls.update(_type_declarations(_parse(p)))
    out = {}
    for name, decl in decls.items():
        if _text(decl.child_by_field_name("declaration_kind")) != "struct":
            continue
        if not _inherits(decl) & {"Codable", "Decodable"}:
            continue
        stored: dict[str, SwiftType] = {}
        keys: dict[str, str] | None = None
        for member in _body(decl).children:
            if member.type == "property_declaration" and not _is_static(member) \
                    and member.child_by_field_name("computed_value") is None:
                prop = _text(member.child_by_field_name("name"))
                if member.child_by_field_name("value") is None:
                    stored[prop] = _swift_type(next(c for c in member.children if c.type == "type_annotation"))
            if member.type == "class_declaration" and _text(member.child_by_field_name("name")) == "CodingKeys":
                keys = {}
                for entry in _walk(member):
                    if entry.type != "enum_entry":
                        continue
                    names = [(i, c) for i, c in enumerate(entry.children) if entry.field_name_for_child(i) == "name"]
                    raw = entry.child_by_field_name("raw_value")
                    for _, c in names:
                        keys[_text(c)] = _text(raw).strip('"') if raw is not None and len(names) == 1 else _text(c)
        problems = []
        if keys is None:
            keys = {p: p for p in stored}
        for prop in stored:
            if prop not in keys:
                problems.append(f"{name}.{prop} has no CodingKeys case (synthesized Codable would not compile)")
        for case in keys:
            if case not in stored:
                problems.append(f"{name}.CodingKeys.{case} names no stored property (would not compile)")
        out[name] = CodableStruct(name, {p: (keys.get(p, p), t) for p, t in stored.items()}, problems)
    return out


CORE_CODABLE = sorted(CORE_SOURCES.glob("*.swift"))


def _flatten(value) -> list:
    """[[T]] / [T] / T -> the T objects inside, as a list."""
    if not isinstance(value, list):
        return [value]
    return [x for item in value for x in _flatten(item)]


def _missing_keys(structs: dict[str, CodableStruct], root: str, value, where: str) -> list[str]:
    """Keys declared by `root` (recursively through nested Codable structs) that `value` lacks."""
    missing = []
    struct = structs[root]
    objs = value if isinstance(value, list) else [value]
    for prop, (key, typ) in struct.fields.items():
        present = [o for o in objs if isinstance(o, dict) and key in o]
        if typ.optional:
            if not present:
                missing.append(f"{where}.{key} (declared by {root}.{prop}, optional) appears nowhere")
        elif len(present) != len(objs):
            missing.append(f"{where}.{key} (declared by {root}.{prop}) is absent")
        if typ.name in structs:
            for o in present:
                if o[key] is not None:
                    missing += _missing_keys(structs, typ.name, _flatten(o[key]), f"{where}.{key}")
    return sorted(set(missing))


def test_codable_structs_have_consistent_coding_keys():
    structs = _codable_structs(CORE_CODABLE)
    for required in ("PackageManifest", "GoldenFile", "GoldenIndex", "GoldenFace", "PriorConfig", "Thresholds",
                     "Letterbox", "RawOutputs"):
        assert required in structs, f"no Codable struct {required} in {CORE_SOURCES.relative_to(ROOT)}"
    problems = [p for s in structs.values() for p in s.problems]
    assert not problems, "\n".join(problems)


# ---------------------------------------------------------------------------------------------
# (b) constants


def _swift_defaults() -> dict[str, object]:
    path = CORE_SOURCES / "Defaults.swift"
    decls = _type_declarations(_parse(path))
    assert "DetectorDefaults" in decls, f"{path.relative_to(ROOT)} declares no DetectorDefaults"
    return _static_constants(decls["DetectorDefaults"])


def test_swift_default_constants_equal_python_configuration():
    from featherface_mobile.models.registry import DetectorConfig, PriorConfig
    from featherface_mobile.processing import Thresholds

    swift = _swift_defaults()
    priors, detector, thresholds = PriorConfig(), DetectorConfig(), Thresholds()
    # Python field -> Swift constant; every field of the three dataclasses must be accounted for,
    # so a new Python setting fails here until the Swift side knows about it.
    expected = {
        ("PriorConfig", "min_sizes"): ("minSizes", [list(m) for m in priors.min_sizes]),
        ("PriorConfig", "steps"): ("steps", list(priors.steps)),
        ("PriorConfig", "variance"): ("variance", list(priors.variance)),
        ("PriorConfig", "clip"): ("clip", priors.clip),
        ("DetectorConfig", "mean_bgr"): ("meanBGR", list(detector.mean_bgr)),
        ("DetectorConfig", "score_threshold"): ("scoreThreshold", detector.score_threshold),
        ("DetectorConfig", "nms_iou"): ("nmsIoU", detector.nms_iou),
        ("DetectorConfig", "input_size"): ("inputSize", detector.input_size),
        ("Thresholds", "score"): ("scoreThreshold", thresholds.score),
        ("Thresholds", "nms_iou"): ("nmsIoU", thresholds.nms_iou),
        ("Thresholds", "top_k"): ("topK", thresholds.top_k),
        ("Thresholds", "keep_top_k"): ("keepTopK", thresholds.keep_top_k),
    }
    # Not decoding settings: the nested prior config (compared above) and the anchors per cell
    # (implied by min_sizes).
    not_ported = {("DetectorConfig", "priors"), ("DetectorConfig", "anchors")}
    for cls in (PriorConfig, DetectorConfig, Thresholds):
        for f in dataclasses.fields(cls):
            key = (cls.__name__, f.name)
            assert key in expected or key in not_ported, \
                f"{cls.__name__}.{f.name} is new: add it to DetectorDefaults in Defaults.swift and to this test"
    assert detector.anchors == len(priors.min_sizes[0])
    mismatches = []
    for (cls, field), (name, value) in expected.items():
        if name not in swift:
            mismatches.append(f"DetectorDefaults.{name} missing (Python {cls}.{field} = {value!r})")
        elif swift[name] != value or type(swift[name]) is bool and type(value) is not bool:
            mismatches.append(f"DetectorDefaults.{name} = {swift[name]!r} but Python {cls}.{field} = {value!r}")
    assert not mismatches, "Defaults.swift differs from the Python configuration:\n" + "\n".join(mismatches)


def test_decoder_reads_the_manifest_before_the_defaults():
    # The defaults are a fallback only: the manifest initialiser must take priors/thresholds/input from it.
    src = (CORE_SOURCES / "DetectorConfig.swift").read_text()
    assert "init(manifest: PackageManifest)" in src
    assert "manifest.priors ?? .fallback" in src and "manifest.thresholds ?? .fallback" in src
    assert "inputWidth: manifest.input.width" in src and "meanBGR: manifest.input.mean" in src


# ---------------------------------------------------------------------------------------------
# (c) field names against real files and the documented manifest


@pytest.fixture(scope="module")
def golden_dir(tmp_path_factory) -> Path:
    try:
        from featherface_mobile.golden import write_golden
    except ImportError as e:
        pytest.skip(f"featherface_mobile.golden.write_golden not importable ({e}); it writes the golden vectors")
    from featherface_mobile.errors import FeatherfaceError

    out = tmp_path_factory.mktemp("golden")
    try:
        write_golden(out, model="retinaface-mnet025", size=320, images=3)
    except FeatherfaceError as e:  # the shared WIDER images / weights are absent
        pytest.skip(str(e))
    return out


def test_golden_files_carry_every_key_the_swift_reader_declares(golden_dir: Path):
    structs = _codable_structs(CORE_CODABLE)
    index = json.loads((golden_dir / "index.json").read_text())
    assert not _missing_keys(structs, "GoldenIndex", index, "index.json")
    assert index["files"], "write_golden wrote an empty index"
    for name in index["files"]:
        record = json.loads((golden_dir / name).read_text())
        missing = _missing_keys(structs, "GoldenFile", record, name)
        assert not missing, "golden file lacks keys the Swift GoldenFile reader needs:\n" + "\n".join(missing)


def test_golden_vectors_give_the_swift_tests_something_to_match(golden_dir: Path):
    index = json.loads((golden_dir / "index.json").read_text())
    total_faces = 0
    for name in index["files"]:
        g = json.loads((golden_dir / name).read_text())
        n = g["num_priors"]
        assert (len(g["raw"]["loc"]), len(g["raw"]["conf"]), len(g["raw"]["landms"])) == (4 * n, 2 * n, 10 * n)
        total_faces += len(g["faces"])
    assert total_faces > 0, "no golden file has a face: the Swift decoding test would compare nothing"


def _doc_manifest() -> dict:
    doc = (ROOT / "docs" / "formats.md").read_text()
    blocks = re.findall(r"```json\n(.*?)```", doc, flags=re.S)
    manifests = [b for b in blocks if '"featherface-package/1"' in b]
    assert manifests, "docs/formats.md has no manifest example"
    return json.loads(manifests[0])


def test_documented_manifest_carries_every_key_the_swift_reader_declares():
    structs = _codable_structs(CORE_CODABLE)
    missing = _missing_keys(structs, "PackageManifest", _doc_manifest(), "manifest.json")
    assert not missing, "docs/formats.md manifest lacks keys the Swift PackageManifest reader declares:\n" + "\n".join(missing)


def test_swift_format_names_match_the_docs():
    doc = (ROOT / "docs" / "formats.md").read_text()
    src = (CORE_SOURCES / "Formats.swift").read_text()
    for fmt in re.findall(r'static let formatName = "([^"]+)"', src):
        assert f'"{fmt}"' in doc, f"Formats.swift reads {fmt!r}, which docs/formats.md does not define"
    assert len(re.findall(r"static let formatName", src)) == 3


# ---------------------------------------------------------------------------------------------
# The Xcode project: a well-formed old-style plist whose references all resolve


def _openstep(text: str):
    """Parse an old-style (OpenStep) property list, the format of project.pbxproj."""
    pos = 0
    bare = re.compile(r"[A-Za-z0-9_$/:.\-+]+")

    def skip():
        nonlocal pos
        while True:
            m = re.compile(r"\s+|/\*.*?\*/|//[^\n]*", re.S).match(text, pos)
            if not m or m.end() == pos:
                return
            pos = m.end()

    def fail(what):
        line = text.count("\n", 0, pos) + 1
        raise ValueError(f"project.pbxproj line {line}: {what}")

    def value():
        nonlocal pos
        skip()
        c = text[pos:pos + 1]
        if c == "{":
            pos += 1
            out = {}
            while True:
                skip()
                if text[pos:pos + 1] == "}":
                    pos += 1
                    return out
                key = value()
                skip()
                if text[pos:pos + 1] != "=":
                    fail(f"expected '=' after key {key!r}")
                pos += 1
                out[key] = value()
                skip()
                if text[pos:pos + 1] != ";":
                    fail(f"expected ';' after the value of {key!r}")
                pos += 1
        if c == "(":
            pos += 1
            items = []
            while True:
                skip()
                if text[pos:pos + 1] == ")":
                    pos += 1
                    return items
                items.append(value())
                skip()
                if text[pos:pos + 1] == ",":
                    pos += 1
                elif text[pos:pos + 1] != ")":
                    fail("expected ',' or ')' in a list")
        if c == '"':
            m = re.compile(r'"((?:[^"\\]|\\.)*)"', re.S).match(text, pos)
            if not m:
                fail("unterminated string")
            pos = m.end()
            return m.group(1)
        m = bare.match(text, pos)
        if not m:
            fail(f"unexpected {text[pos:pos + 20]!r}")
        pos = m.end()
        return m.group(0)

    result = value()
    skip()
    if pos != len(text):
        fail("trailing text after the top-level dictionary")
    return result


XCODEPROJ = IOS / "FeatherFaceDemo.xcodeproj"


def _project() -> dict:
    return _openstep((XCODEPROJ / "project.pbxproj").read_text())


def test_xcode_project_parses_and_every_reference_resolves():
    project = _project()
    objects = project["objects"]
    assert project["rootObject"] in objects
    object_id = re.compile(r"^[0-9A-F]{24}$")

    def refs(v):
        if isinstance(v, dict):
            for x in v.values():
                yield from refs(x)
        elif isinstance(v, list):
            for x in v:
                yield from refs(x)
        elif isinstance(v, str) and object_id.match(v):
            yield v

    dangling = sorted({r for obj in objects.values() for r in refs(obj) if r not in objects})
    assert not dangling, f"project.pbxproj references missing objects: {dangling}"
    assert all("isa" in obj for obj in objects.values())


def test_xcode_project_targets_point_at_real_folders_and_the_core_package():
    objects = _project()["objects"]
    by_isa: dict[str, list[dict]] = {}
    for obj in objects.values():
        by_isa.setdefault(obj["isa"], []).append(obj)
    for group in by_isa["PBXFileSystemSynchronizedRootGroup"]:
        folder = IOS / group["path"]
        assert folder.is_dir() and any(folder.glob("*.swift")), f"synchronized folder {group['path']} has no Swift sources"
    (package,) = by_isa["XCLocalSwiftPackageReference"]
    manifest = (IOS / package["relativePath"] / "Package.swift").read_text()
    for dep in by_isa["XCSwiftPackageProductDependency"]:
        assert f'.library(name: "{dep["productName"]}"' in manifest, f"Package.swift has no product {dep['productName']}"
    targets = {t["name"]: t for t in by_isa["PBXNativeTarget"]}
    assert set(targets) == {"FeatherFaceDemo", "FeatherFaceDemoTests"}
    for target in targets.values():
        for cfg_id in objects[target["buildConfigurationList"]]["buildConfigurations"]:
            settings = objects[cfg_id]["buildSettings"]
            assert float(settings["IPHONEOS_DEPLOYMENT_TARGET"]) >= 16.0
            if target["name"] == "FeatherFaceDemo":
                assert settings["INFOPLIST_KEY_NSCameraUsageDescription"], "the camera needs a usage description"
                assert settings["ENABLE_TESTABILITY"] == "YES", "the tests use @testable import in every configuration"


def test_shared_scheme_tests_the_app_and_the_core_package():
    import xml.etree.ElementTree as ET

    objects = _project()["objects"]
    scheme = ET.parse(XCODEPROJ / "xcshareddata" / "xcschemes" / "FeatherFaceDemo.xcscheme")
    refs = scheme.getroot().iter("BuildableReference")
    testables = [r.attrib for r in scheme.getroot().find("TestAction").iter("BuildableReference")]
    for ref in refs:
        if ref.attrib["ReferencedContainer"] == "container:FeatherFaceDemo.xcodeproj":
            target = objects.get(ref.attrib["BlueprintIdentifier"])
            assert target and target["name"] == ref.attrib["BlueprintName"], f"scheme names a missing target {ref.attrib}"
    manifest = (IOS / "FaceDetectorCore" / "Package.swift").read_text()
    package_tests = [t for t in testables if t["ReferencedContainer"] == "container:FaceDetectorCore"]
    assert package_tests and all(f'.testTarget(name: "{t["BlueprintName"]}"' in manifest for t in package_tests)
    assert any(t["BlueprintName"] == "FeatherFaceDemoTests" for t in testables)
