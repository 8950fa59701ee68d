"""The changes in a unified diff that move AI spend. Pure: text in, typed changes out (no git, no I/O).

``parse_unified_diff`` reads ``git diff`` output (any ``--unified`` context, renames, copies, deletions,
binary files, quoted paths) or plain ``diff -u`` output into ``FileDiff`` objects. ``find_changes`` then
classifies the added and removed lines of each hunk:

- ``ModelChange``: an LLM model identifier replaced (``model="gpt-4o"`` -> ``"o3"``) or introduced, in code
  (a string literal that names a known model family) or config (``model: ...``, ``model_name: ...`` in
  YAML / .env / .ini, LiteLLM's ``model_list``). A model only removed is not reported.
- ``TokenCapChange``: ``max_tokens`` / ``max_completion_tokens`` / ``max_output_tokens`` (and their
  camelCase forms, ``max_new_tokens``) changed, added or removed.
- ``CallSite``: a new LLM call (``client.chat.completions.create(``, ``anthropic.messages.create(``,
  ``ChatOpenAI(``, ``litellm.completion(`` ...) in code, with the model literal found on the call's lines.
- ``InstanceChange``: a GPU / ML instance type (``p4d.24xlarge``, ``ml.g5.2xlarge``) under an instance-type
  key (Terraform ``instance_type``, CloudFormation / SageMaker ``InstanceType``, EKS ``instance_types``,
  Kubernetes ``node.kubernetes.io/instance-type``) replaced, added or removed, or the instance count of one
  (``InitialInstanceCount``, ``initial_instance_count``, ``instance_count``, ``desired_size``, Terraform
  ``count``) changed.

Pairing is per hunk: identical values on both sides cancel out (a line edited for another reason), the
rest pair in order. Documentation, tests and lock files are skipped (they are not deployed); comment lines
are skipped. Paths are matched with ``glob_match`` (``**`` spans folders, ``*`` does not).
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from typing import Literal

from tools.cloud.inventory import is_gpu_instance_type
from tools.errors import FinOpsError


class ReviewError(FinOpsError):
    """The change cannot be reviewed as asked (no repository, an unknown ref, an unreadable diff ...)."""


FileStatus = Literal["added", "deleted", "modified", "renamed", "copied"]
Side = Literal["old", "new"]


@dataclass(frozen=True)
class DiffLine:
    """One added (``+``) or removed (``-``) line, or a context line (`` ``), with its line number in the
    new file (added, context) or the old file (removed)."""

    kind: Literal["+", "-", " "]
    number: int
    text: str


@dataclass(frozen=True)
class Hunk:
    old_start: int
    old_count: int
    new_start: int
    new_count: int
    lines: tuple[DiffLine, ...]

    @property
    def added(self) -> list[DiffLine]:
        return [line for line in self.lines if line.kind == "+"]

    @property
    def removed(self) -> list[DiffLine]:
        return [line for line in self.lines if line.kind == "-"]


@dataclass(frozen=True)
class FileDiff:
    """One file of the diff. ``old_path`` is None for an added file, ``new_path`` None for a deleted one."""

    old_path: str | None
    new_path: str | None
    status: FileStatus = "modified"
    binary: bool = False
    hunks: tuple[Hunk, ...] = ()

    @property
    def path(self) -> str:
        """The path the change is reported under: the new path, or the old one for a deleted file."""
        path = self.new_path or self.old_path
        assert path is not None
        return path


# ----- Changes ------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class ModelChange:
    """An LLM model identifier replaced (``old`` -> ``new``) or introduced (``old`` None)."""

    path: str
    line: int
    old: str | None
    new: str
    snippet: str = ""
    kind: Literal["model"] = "model"

    @property
    def introduced_models(self) -> tuple[str, ...]:
        return (self.new,)

    def describe(self) -> str:
        if self.old is None:
            return f"model `{self.new}` added"
        return f"model `{self.old}` → `{self.new}`"


@dataclass(frozen=True)
class TokenCapChange:
    """An output token cap changed; ``old`` None: a cap added, ``new`` None: a cap removed."""

    path: str
    line: int
    key: str
    old: int | None
    new: int | None
    snippet: str = ""
    kind: Literal["max_tokens"] = "max_tokens"

    @property
    def introduced_models(self) -> tuple[str, ...]:
        return ()

    def describe(self) -> str:
        if self.old is None:
            return f"`{self.key}` set to {self.new:,}"
        if self.new is None:
            return f"`{self.key}` ({self.old:,}) removed"
        return f"`{self.key}` {self.old:,} → {self.new:,}"


@dataclass(frozen=True)
class CallSite:
    """A new LLM call site; ``model`` is the model literal found on the call's lines, if any."""

    path: str
    line: int
    call: str
    model: str | None = None
    snippet: str = ""
    kind: Literal["call_site"] = "call_site"

    @property
    def introduced_models(self) -> tuple[str, ...]:
        return (self.model,) if self.model else ()

    def describe(self) -> str:
        return f"new LLM call `{self.call}`" + (f" (`{self.model}`)" if self.model else "")


@dataclass(frozen=True)
class InstanceChange:
    """A GPU / ML instance type or count changed. ``old_type`` None: instances added; ``new_type`` None:
    removed. A count None means the change does not say (the estimate then assumes 1)."""

    path: str
    line: int
    old_type: str | None
    new_type: str | None
    old_count: int | None = None
    new_count: int | None = None
    snippet: str = ""
    kind: Literal["instance"] = "instance"

    @property
    def introduced_models(self) -> tuple[str, ...]:
        return ()

    def describe(self) -> str:
        def side(t: str | None, n: int | None) -> str:
            return f"{n} × `{t}`" if n is not None else f"`{t}`"

        if self.old_type is None:
            return f"instance {side(self.new_type, self.new_count)} added"
        if self.new_type is None:
            return f"instance {side(self.old_type, self.old_count)} removed"
        return f"instance {side(self.old_type, self.old_count)} → {side(self.new_type, self.new_count)}"


Change = ModelChange | TokenCapChange | CallSite | InstanceChange

# ----- Parsing -------------------------------------------------------------------------------------------

_HUNK = re.compile(r"^@@@* -(\d+)(?:,(\d+))? \+(\d+)(?:,(\d+))? @@")
_DIFF_GIT = re.compile(r'^diff --git (?P<a>"(?:[^"\\]|\\.)*"|\S+) (?P<b>"(?:[^"\\]|\\.)*"|\S+)\s*$')
_BINARY = re.compile(r"^Binary files (?P<a>.+?) and (?P<b>.+?) differ$")
_ESCAPES = {"n": "\n", "t": "\t", '"': '"', "\\": "\\", "a": "\a", "b": "\b", "f": "\f", "r": "\r", "v": "\v"}


def _unquote(path: str) -> str:
    """A git path as written in a header: ``"a/caf\\303\\251.py"`` is unquoted and its octal bytes decoded."""
    path = path.strip()
    if not (len(path) >= 2 and path[0] == '"' and path[-1] == '"'):
        return path.split("\t", 1)[0]  # diff -u writes "path<TAB>timestamp"
    body, out, i = path[1:-1], bytearray(), 0
    while i < len(body):
        ch = body[i]
        if ch == "\\" and i + 1 < len(body):
            nxt = body[i + 1]
            if nxt in "01234567" and re.match(r"[0-7]{3}", body[i + 1 : i + 4]):
                out.append(int(body[i + 1 : i + 4], 8))
                i += 4
                continue
            out.extend(_ESCAPES.get(nxt, nxt).encode())
            i += 2
            continue
        out.extend(ch.encode())
        i += 1
    return out.decode("utf-8", errors="replace")


def _strip_prefix(path: str) -> str | None:
    path = _unquote(path)
    if path == "/dev/null":
        return None
    for prefix in ("a/", "b/", "i/", "w/", "c/", "o/"):
        if path.startswith(prefix):
            return path[len(prefix) :]
    return path


@dataclass
class _FileBuilder:
    old_path: str | None = None
    new_path: str | None = None
    status: FileStatus = "modified"
    binary: bool = False
    hunks: list[Hunk] = field(default_factory=list)

    def build(self) -> FileDiff | None:
        if self.old_path is None and self.new_path is None:
            return None
        status = self.status
        if status == "modified" and self.old_path is None:
            status = "added"
        elif status == "modified" and self.new_path is None:
            status = "deleted"
        return FileDiff(self.old_path, self.new_path, status, self.binary, tuple(self.hunks))


def parse_unified_diff(text: str) -> list[FileDiff]:
    """Every file of a unified diff, in order. Raises ``ReviewError`` on a hunk that is cut short."""
    files: list[FileDiff] = []
    current: _FileBuilder | None = None
    lines = text.splitlines()
    i = 0

    def flush() -> None:
        if current is not None:
            built = current.build()
            if built is not None:
                files.append(built)

    while i < len(lines):
        line = lines[i]
        if line.startswith("diff --git "):
            flush()
            old, new = _git_header_paths(line)
            current = _FileBuilder(old, new)
            i += 1
            continue
        if line.startswith("--- ") and i + 1 < len(lines) and lines[i + 1].startswith("+++ "):
            if current is None or current.hunks:  # plain `diff -u`: a new file starts here
                flush()
                current = _FileBuilder()
            old, new = _strip_prefix(line[4:]), _strip_prefix(lines[i + 1][4:])
            current.old_path, current.new_path = old, new
            i += 2
            continue
        if current is None:
            i += 1  # preamble (commit message of `git format-patch`, `index` lines ...)
            continue
        hunk = _HUNK.match(line)
        if hunk:
            parsed, i = _read_hunk(lines, i, hunk, current.new_path or current.old_path or "?")
            current.hunks.append(parsed)
            continue
        _header(line, current)
        i += 1
    flush()
    return files


def _git_header_paths(line: str) -> tuple[str | None, str | None]:
    """The two paths of ``diff --git a/x b/y``; unquoted paths with spaces are split where both halves agree
    (the ``---`` / ``+++`` and ``rename`` lines that follow correct them when they do not)."""
    m = _DIFF_GIT.match(line)
    if m:
        return _strip_prefix(m["a"]), _strip_prefix(m["b"])
    rest = line[len("diff --git ") :]
    splits = [i for i in range(len(rest)) if rest.startswith(" b/", i)]
    for i in splits:
        a, b = rest[:i], rest[i + 1 :]
        if a[2:] == b[2:]:
            return _strip_prefix(a), _strip_prefix(b)
    if splits:
        return _strip_prefix(rest[: splits[0]]), _strip_prefix(rest[splits[0] + 1 :])
    return None, None


def _header(line: str, current: _FileBuilder) -> None:
    if line.startswith("new file mode"):
        current.status = "added"
        current.old_path = None
    elif line.startswith("deleted file mode"):
        current.status = "deleted"
        current.new_path = None
    elif line.startswith("rename from "):
        current.status, current.old_path = "renamed", _unquote(line[len("rename from ") :])
    elif line.startswith("rename to "):
        current.status, current.new_path = "renamed", _unquote(line[len("rename to ") :])
    elif line.startswith("copy from "):
        current.status, current.old_path = "copied", _unquote(line[len("copy from ") :])
    elif line.startswith("copy to "):
        current.status, current.new_path = "copied", _unquote(line[len("copy to ") :])
    elif line.startswith("GIT binary patch") or _BINARY.match(line):
        current.binary = True
    # other lines (index, mode changes, similarity, binary patch data) carry nothing to review


def _read_hunk(lines: Sequence[str], i: int, m: re.Match[str], path: str) -> tuple[Hunk, int]:
    old_start, new_start = int(m[1]), int(m[3])
    old_count = int(m[2]) if m[2] is not None else 1
    new_count = int(m[4]) if m[4] is not None else 1
    old_left, new_left = old_count, new_count
    old_no, new_no = old_start, new_start
    out: list[DiffLine] = []
    i += 1
    while (old_left > 0 or new_left > 0) and i < len(lines):
        line = lines[i]
        tag, body = line[:1], line[1:]
        if tag == "+" and new_left > 0:
            out.append(DiffLine("+", new_no, body))
            new_no, new_left = new_no + 1, new_left - 1
        elif tag == "-" and old_left > 0:
            out.append(DiffLine("-", old_no, body))
            old_no, old_left = old_no + 1, old_left - 1
        elif (tag == " " or line == "") and old_left > 0 and new_left > 0:
            out.append(DiffLine(" ", new_no, body))
            old_no, new_no = old_no + 1, new_no + 1
            old_left, new_left = old_left - 1, new_left - 1
        elif tag == "\\":
            pass  # "\ No newline at end of file"
        else:
            raise ReviewError(
                f"{path}: a hunk ends early at line {i + 1} of the diff: expected {old_left} more old and "
                f"{new_left} more new line(s), got {line[:60]!r}. Pass the complete output of `git diff`."
            )
        i += 1
    if old_left > 0 or new_left > 0:
        raise ReviewError(
            f"{path}: the diff ends inside a hunk ({old_left} old and {new_left} new line(s) missing); "
            "pass the complete output of `git diff`."
        )
    while i < len(lines) and lines[i].startswith("\\"):
        i += 1
    return Hunk(old_start, old_count, new_start, new_count, tuple(out)), i


# ----- Paths ---------------------------------------------------------------------------------------------

_DOC_SUFFIXES = (".md", ".markdown", ".rst", ".txt", ".adoc", ".html", ".ipynb", ".csv", ".svg")
_LOCK_NAMES = frozenset(
    {
        "poetry.lock",
        "uv.lock",
        "Pipfile.lock",
        "package-lock.json",
        "yarn.lock",
        "pnpm-lock.yaml",
        "Cargo.lock",
    }
)
_CODE_SUFFIXES = (
    ".py",
    ".pyi",
    ".js",
    ".jsx",
    ".mjs",
    ".cjs",
    ".ts",
    ".tsx",
    ".mts",
    ".go",
    ".java",
    ".kt",
    ".rb",
    ".cs",
    ".php",
    ".rs",
    ".scala",
    ".swift",
)
#: files where an unquoted ``key: value`` / ``KEY=value`` is a value (not a variable)
_CONFIG_SUFFIXES = (".yaml", ".yml", ".env", ".ini", ".cfg", ".conf", ".properties", ".toml", ".tfvars")


def glob_match(path: str, pattern: str) -> bool:
    """``path`` matches ``pattern``: ``**`` spans any folders (``a/**`` is everything under ``a``), ``*`` and
    ``?`` stay within one path segment. A pattern without a ``/`` matches the file name in any folder."""
    pattern = pattern.strip().lstrip("/")
    if "/" not in pattern:
        pattern = "**/" + pattern
    return re.fullmatch(_glob_regex(pattern), path.lstrip("/")) is not None


def _glob_regex(pattern: str) -> str:
    out, i = [], 0
    while i < len(pattern):
        if pattern.startswith("**/", i):
            out.append("(?:.*/)?")
            i += 3
        elif pattern.startswith("**", i):
            out.append(".*")
            i += 2
        elif pattern[i] == "*":
            out.append("[^/]*")
            i += 1
        elif pattern[i] == "?":
            out.append("[^/]")
            i += 1
        else:
            out.append(re.escape(pattern[i]))
            i += 1
    return "".join(out)


def is_reviewed_path(path: str) -> bool:
    """False for documentation, tests and lock files: they are not deployed."""
    name = path.rsplit("/", 1)[-1]
    lowered = path.lower()
    if name in _LOCK_NAMES or lowered.endswith(_DOC_SUFFIXES):
        return False
    parts = lowered.split("/")
    if any(
        p in ("test", "tests", "__tests__", "spec", "testdata", "fixtures", "docs", "doc") for p in parts[:-1]
    ):
        return False
    stem = name.lower().rsplit(".", 1)[0]
    return not (
        stem.startswith("test_")
        or stem.endswith(("_test", ".test", ".spec", "_spec"))
        or name.lower() == "conftest.py"
    )


def _is_code(path: str) -> bool:
    return path.lower().endswith(_CODE_SUFFIXES)


def _is_config(path: str) -> bool:
    name = path.rsplit("/", 1)[-1].lower()
    return name.endswith(_CONFIG_SUFFIXES) or name == ".env" or name.startswith(".env.")


# ----- Recognisers ---------------------------------------------------------------------------------------

_MODEL_FAMILY = r"""
    gpt-\d[\w.:-]*
  | chatgpt-[\w.:-]+
  | o[1-9](?:-(?:mini|pro|preview|deep-research)[\w.:-]*|-\d{4}-\d{2}-\d{2})?
  | claude-[\w.:@-]+
  | gemini-[\w.:-]+
  | (?:meta-)?(?:code)?llama-?\d[\w.:-]*
  | (?:open-)?(?:mistral|mixtral|codestral|ministral|pixtral|magistral)(?:-[\w.:-]+)?
  | command-(?:r|light|a|nightly)[\w.:-]*
  | text-embedding-[\w.:-]+
  | deepseek-[\w.:-]+
  | qwen[\d.-][\w.:-]*
  | grok-[\w.:-]+
  | nova-(?:micro|lite|pro|premier)[\w.:-]*
  | titan-[\w.:-]+
  | gemma-?\d[\w.:-]*
  | phi-\d[\w.:-]*
  | jamba-[\w.:-]+
"""
_MODEL_ID = re.compile(
    r"""(?ix)
    (?:ft:)?
    (?:[a-z0-9_-]+/)*                                        # gateway prefixes: openai/, azure/, bedrock/
    (?:(?:us|eu|apac|global|us-gov|jp|au|ca)\.)?
    (?:(?:anthropic|meta|amazon|mistral|cohere|ai21|openai|deepseek|google)\.)?
    (?:"""
    + _MODEL_FAMILY
    + r")"
)
#: bare o-series names ("o3", "o1-mini") are model ids only where a model is expected (a model key, a call)
_AMBIGUOUS_MODEL = re.compile(r"(?i)^(?:[a-z0-9_-]+/)?o[1-9](?:-mini)?$")
_STRING = re.compile(r"""(?P<q>["'`])(?P<v>[^"'`\\\n]{1,200})(?P=q)""")
_MODEL_KEY = re.compile(
    r"""(?ix)(?:^|[\s{(,"'\[])["']?
    (?P<key>[\w.-]*(?:model|deployment)(?:[_-]?(?:name|id))?|modelId|modelName|engine)["']?\s*[:=]\s*
    (?P<q>["']?)(?P<v>[^\s"',}#\])]+)(?P=q)"""
)
_TOKEN_CAP = re.compile(
    r"""(?x)(?:^|[^\w])["']?
    (?P<key>max_completion_tokens|max_output_tokens|max_new_tokens|max_tokens_to_sample|max_tokens
       |maxCompletionTokens|maxOutputTokens|maxNewTokens|maxTokens|MaxTokens)["']?\s*[:=]\s*
    ["']?(?P<v>\d[\d_,]*)(?![\w.])"""
)
_INSTANCE_TYPE = (
    r"(?:ml\.)?[a-z][a-z0-9-]*\d[a-z0-9-]*\.(?:nano|micro|small|medium|large|\d*xlarge|metal(?:-\d+xl)?)"
)
_INSTANCE_KEY = re.compile(
    r"""(?x)(?P<key>instance_types?|InstanceTypes?|instanceTypes?|node\.kubernetes\.io/instance-type
       |beta\.kubernetes\.io/instance-type|instance-type|node_type|NodeType)["']?\s*[:=]\s*(?P<rest>.*)"""
)
_INSTANCE_VALUE = re.compile(r"(?<![\w.])(" + _INSTANCE_TYPE + r")(?![\w])")
_INSTANCE_LITERAL = re.compile(r"""["'](""" + _INSTANCE_TYPE + r""")["']""")
_COUNT_KEY = re.compile(
    r"""(?x)(?:^|[^\w])["']?(?P<key>InitialInstanceCount|initial_instance_count|instance_count|InstanceCount
       |desired_size|desired_capacity|DesiredCapacity|count)["']?\s*[:=]\s*["']?(?P<v>\d+)(?![\w.])"""
)
#: LLM client calls that send a request (and so spend): name shown, pattern
CALL_PATTERNS: tuple[tuple[str, re.Pattern[str]], ...] = tuple(
    (name, re.compile(pattern))
    for name, pattern in (
        ("chat.completions.create", r"\.chat\.completions\.(?:create|parse|stream)\s*\("),
        ("ChatCompletion.create", r"\bChat(?:Completion|Completions)\.a?create\s*\("),
        ("completions.create", r"(?<!chat)\.completions\.create\s*\("),
        ("responses.create", r"\.responses\.(?:create|parse|stream)\s*\("),
        ("messages.create", r"(?<!threads)\.messages\.(?:create|stream)\s*\("),
        ("embeddings.create", r"\.embeddings\.create\s*\("),
        ("litellm.completion", r"\blitellm\.a?(?:completion|text_completion|embedding|responses)\s*\("),
        ("ChatOpenAI", r"\b(?:Azure)?ChatOpenAI\s*\("),
        ("ChatAnthropic", r"\bChatAnthropic(?:Messages)?\s*\("),
        ("ChatBedrock", r"\bChatBedrock(?:Converse)?\s*\("),
        ("ChatVertexAI", r"\bChat(?:VertexAI|GoogleGenerativeAI)\s*\("),
        ("ChatMistralAI", r"\bChatMistralAI\s*\("),
        ("ChatLiteLLM", r"\bChatLiteLLM(?:Router)?\s*\("),
        ("init_chat_model", r"\binit_chat_model\s*\("),
        ("OpenAIEmbeddings", r"\b(?:Azure)?OpenAIEmbeddings\s*\("),
        ("bedrock invoke_model", r"\.invoke_model(?:_with_response_stream)?\s*\("),
        ("bedrock converse", r"\.converse(?:_stream)?\s*\("),
        ("generate_content", r"\.generate_content(?:_async)?\s*\("),
        ("mistral chat.complete", r"\.chat\.complete(?:_async)?\s*\("),
        ("generateText", r"\b(?:generate|stream)(?:Text|Object)\s*\("),
    )
)
_COMMENT_PREFIXES = ("#", "//", "/*", "*", "--", ";", "<!--")
#: how many added lines after a call its model literal may be on
CALL_MODEL_LINES = 8
#: how far (lines) from an instance type its count may be in the file
COUNT_NEAR_LINES = 15


def _is_comment(text: str) -> bool:
    return text.lstrip().startswith(_COMMENT_PREFIXES)


def is_model_id(value: str) -> bool:
    """``value`` names an LLM model of a known family (``gpt-4o``, ``azure/gpt-4o``, ``anthropic.claude-...``)."""
    return _MODEL_ID.fullmatch(value.strip()) is not None


def models_on_line(text: str, path: str, *, call: bool = False) -> list[str]:
    """The model identifiers on one line, in order. A bare o-series name counts only after a model key or
    on a call; an unquoted value counts only in config files (in code it would be a variable)."""
    if _is_comment(text):
        return []
    found: list[tuple[int, str]] = []
    keyed_spans: list[tuple[int, int]] = []
    for m in _MODEL_KEY.finditer(text):
        value = m["v"]
        if not m["q"] and not _is_config(path):
            continue
        if is_model_id(value):
            found.append((m.start("v"), value))
            keyed_spans.append((m.start("v"), m.end("v")))
    for m in _STRING.finditer(text):
        value = m["v"].strip()
        if any(s <= m.start("v") < e for s, e in keyed_spans) or not is_model_id(value):
            continue
        if _AMBIGUOUS_MODEL.match(value) and not call:
            continue
        found.append((m.start("v"), value))
    return [v for _, v in sorted(found)]


def token_caps_on_line(text: str) -> list[tuple[str, int]]:
    if _is_comment(text):
        return []
    out = []
    for m in _TOKEN_CAP.finditer(text):
        digits = m["v"].replace("_", "").replace(",", "")
        if digits.isdigit():
            out.append((m["key"], int(digits)))
    return out


def calls_on_line(text: str) -> list[str]:
    stripped = text.lstrip()
    if _is_comment(text) or stripped.startswith(("def ", "async def ", "class ", "import ", "from ")):
        return []
    return [name for name, pattern in CALL_PATTERNS if pattern.search(text)]


def is_ai_instance_type(instance_type: str) -> bool:
    """A GPU / accelerator type (g*, p*, inf*, trn*) or any SageMaker (``ml.``) type."""
    return instance_type.startswith("ml.") or is_gpu_instance_type(instance_type)


def instance_types_on_line(text: str) -> list[str]:
    if _is_comment(text):
        return []
    out: list[str] = []
    key = _INSTANCE_KEY.search(text)
    if key:
        out.extend(m.group(1) for m in _INSTANCE_VALUE.finditer(key["rest"]))
    for m in _INSTANCE_LITERAL.finditer(text):
        if m.group(1) not in out and is_ai_instance_type(m.group(1)):
            out.append(m.group(1))  # e.g. a Terraform variable's ``default = "p4d.24xlarge"``
    return out


def counts_on_line(text: str, path: str) -> list[int]:
    if _is_comment(text):
        return []
    out = []
    for m in _COUNT_KEY.finditer(text):
        if m["key"] == "count" and not path.endswith((".tf", ".tf.json")):
            continue  # a bare ``count`` is an instance count in Terraform only
        out.append(int(m["v"]))
    return out


# ----- Classification ------------------------------------------------------------------------------------

FileText = Callable[[str, Side], str | None]


def find_changes(files: Iterable[FileDiff], file_text: FileText | None = None) -> list[Change]:
    """The cost-relevant changes of a parsed diff, in file and line order.

    ``file_text(path, side)`` may return a file's whole text at the base (``"old"``) or head (``"new"``)
    side; it is asked only to find the instance count near a changed instance type (or the instance type
    near a changed count) when the hunk itself does not show it. Without it the hunk's own lines are used.
    """
    out: list[Change] = []
    for f in files:
        if f.binary or not is_reviewed_path(f.path):
            continue
        for hunk in f.hunks:
            out.extend(_hunk_changes(f, hunk, file_text))
    return out


def _hunk_changes(f: FileDiff, hunk: Hunk, file_text: FileText | None) -> list[Change]:
    path = f.path
    out: list[Change] = []
    consumed: set[int] = set()  # added line numbers whose model literal belongs to a new call
    call_lines: set[int] = set()  # added line numbers that are part of a new call's arguments
    if _is_code(path):
        out.extend(_new_calls(path, hunk, consumed, call_lines))
    out.extend(_model_changes(path, hunk, consumed))
    out.extend(_cap_changes(path, hunk, call_lines))
    out.extend(_instance_changes(f, hunk, file_text))
    return out


def _new_calls(path: str, hunk: Hunk, consumed: set[int], call_lines: set[int]) -> list[CallSite]:
    removed: dict[str, int] = {}
    for line in hunk.removed:
        for name in calls_on_line(line.text):
            removed[name] = removed.get(name, 0) + 1
    added = hunk.added
    out: list[CallSite] = []
    for idx, line in enumerate(added):
        for name in calls_on_line(line.text):
            if removed.get(name, 0) > 0:
                removed[name] -= 1  # the same call edited, not a new one
                continue
            model = None
            for follower in added[idx : idx + CALL_MODEL_LINES]:
                if follower is not line and calls_on_line(follower.text):
                    break
                if follower.number > line.number + CALL_MODEL_LINES:
                    break
                call_lines.add(follower.number)
                models = models_on_line(follower.text, path, call=True)
                if model is None and models:
                    model = models[0]
                    consumed.add(follower.number)
            out.append(CallSite(path, line.number, name, model, line.text.strip()[:160]))
    return out


def _cancel(old: list[tuple[DiffLine, str]], new: list[tuple[DiffLine, str]]) -> None:
    """Drop values present on both sides (in place): a line edited for another reason."""
    for item in list(new):
        match = next((o for o in old if o[1] == item[1]), None)
        if match is not None:
            old.remove(match)
            new.remove(item)


def _model_changes(path: str, hunk: Hunk, consumed: set[int]) -> list[ModelChange]:
    old = [(line, m) for line in hunk.removed for m in models_on_line(line.text, path)]
    new = [
        (line, m)
        for line in hunk.added
        if line.number not in consumed
        for m in models_on_line(line.text, path)
    ]
    _cancel(old, new)
    out = []
    for i, (line, model) in enumerate(new):
        before = old[i][1] if i < len(old) else None
        out.append(ModelChange(path, line.number, before, model, line.text.strip()[:160]))
    return out


def _cap_changes(path: str, hunk: Hunk, call_lines: set[int]) -> list[TokenCapChange]:
    """Caps changed; a cap among a new call's arguments is part of that call, not a change of its own."""
    old = [(line, k, v) for line in hunk.removed for k, v in token_caps_on_line(line.text)]
    new = [(line, k, v) for line in hunk.added for k, v in token_caps_on_line(line.text)]
    out: list[TokenCapChange] = []
    for line, key, value in new:
        match = next((o for o in old if o[1] == key), None)
        if match is not None:
            old.remove(match)
            if match[2] == value:
                continue
            out.append(TokenCapChange(path, line.number, key, match[2], value, line.text.strip()[:160]))
        elif line.number not in call_lines:
            out.append(TokenCapChange(path, line.number, key, None, value, line.text.strip()[:160]))
    for line, key, value in old:
        out.append(TokenCapChange(path, line.number, key, value, None, line.text.strip()[:160]))
    return out


def _near(text: str | None, line_no: int, finder: Callable[[str], list[str] | list[int]]) -> object | None:
    """The first value ``finder`` sees on the line nearest ``line_no`` (1-based) within COUNT_NEAR_LINES."""
    if not text:
        return None
    lines = text.splitlines()
    for distance in range(COUNT_NEAR_LINES + 1):
        for n in (line_no - distance, line_no + distance) if distance else (line_no,):
            if 1 <= n <= len(lines):
                values = finder(lines[n - 1])
                if values:
                    return values[0]
    return None


def _hunk_text(hunk: Hunk, side: Side) -> tuple[str, int]:
    """The hunk's own lines of one side, as a text, and the file line number of its first line."""
    keep = ("-", " ") if side == "old" else ("+", " ")
    lines = [line for line in hunk.lines if line.kind in keep]
    start = hunk.old_start if side == "old" else hunk.new_start
    return "\n".join(line.text for line in lines), start


def _count_near(f: FileDiff, hunk: Hunk, side: Side, line_no: int, file_text: FileText | None) -> int | None:
    path = f.path if side == "new" else (f.old_path or f.path)

    def finder(t: str) -> list[int]:
        return counts_on_line(t, path)

    text = file_text(path, side) if file_text is not None else None
    if text is not None:
        found = _near(text, line_no, finder)
    else:
        own, start = _hunk_text(hunk, side)
        found = _near(own, line_no - start + 1, finder)
    return found if isinstance(found, int) else None


def _type_near(f: FileDiff, hunk: Hunk, side: Side, line_no: int, file_text: FileText | None) -> str | None:
    path = f.path if side == "new" else (f.old_path or f.path)
    text = file_text(path, side) if file_text is not None else None
    if text is not None:
        found = _near(text, line_no, instance_types_on_line)
    else:
        own, start = _hunk_text(hunk, side)
        found = _near(own, line_no - start + 1, instance_types_on_line)
    return found if isinstance(found, str) else None


def _instance_changes(f: FileDiff, hunk: Hunk, file_text: FileText | None) -> list[InstanceChange]:
    path = f.path
    old = [(line, t) for line in hunk.removed for t in instance_types_on_line(line.text)]
    new = [(line, t) for line in hunk.added for t in instance_types_on_line(line.text)]
    old_counts = [(line, n) for line in hunk.removed for n in counts_on_line(line.text, path)]
    new_counts = [(line, n) for line in hunk.added for n in counts_on_line(line.text, path)]
    single = len(old) <= 1 and len(new) <= 1
    if single and old and new and old[0][1] == new[0][1]:
        old, new = [], []  # the type line was edited for another reason: maybe a count change
    else:
        _cancel(old, new)
    out: list[InstanceChange] = []
    pairs = max(len(old), len(new))
    for i in range(pairs):
        o = old[i] if i < len(old) else None
        n = new[i] if i < len(new) else None
        old_type, new_type = (o[1] if o else None), (n[1] if n else None)
        if not any(t is not None and is_ai_instance_type(t) for t in (old_type, new_type)):
            continue
        old_count = new_count = None
        if single and old_counts:
            old_count = old_counts[0][1]
        elif o is not None:
            old_count = _count_near(f, hunk, "old", o[0].number, file_text)
        if single and new_counts:
            new_count = new_counts[0][1]
        elif n is not None:
            new_count = _count_near(f, hunk, "new", n[0].number, file_text)
        if o is not None and n is not None and old_count is None and new_count is not None:
            old_count = new_count  # the count did not change
        if o is not None and n is not None and new_count is None and old_count is not None:
            new_count = old_count
        anchor = n[0] if n is not None else o[0] if o is not None else None
        if anchor is None:
            continue
        out.append(
            InstanceChange(
                path, anchor.number, old_type, new_type, old_count, new_count, anchor.text.strip()[:160]
            )
        )
    if not old and not new and old_counts and new_counts:
        o_n, (n_line, n_n) = old_counts[0][1], new_counts[0]
        if o_n != n_n:
            itype = _type_near(f, hunk, "new", n_line.number, file_text)
            if itype is not None and is_ai_instance_type(itype):
                out.append(
                    InstanceChange(path, n_line.number, itype, itype, o_n, n_n, n_line.text.strip()[:160])
                )
    return out
