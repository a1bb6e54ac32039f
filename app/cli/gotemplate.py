"""A subset of Go's text/template, as used by `docker ... --format` and `inspect -f`.

Data is JSON-like (dict/list/str/int/float/bool/None).  Go's parse tree is
mirrored loosely: the lexer turns the source into text chunks and per-action
token lists, the parser builds a small node tree, and `Template.execute` walks
it.  Messages follow Go's wording so users can search for them.
"""
import json
import re
from functools import lru_cache

__all__ = ["TemplateError", "Template", "render", "compile_template"]

# Go's json.Marshal escapes <, > and & (the brief asks for that); the docker CLI
# itself calls SetEscapeHTML(false).  Flip this to match docker byte-for-byte.
JSON_ESCAPE_HTML = False  # docker CLI: enc.SetEscapeHTML(false)


class GoStruct(dict):
    """A JSON object that stands for a Go struct (fields in declared order): `{{.Mounts}}` prints
    `[{volume name /src /dst local  true }]` as the docker CLI does, not a map."""


class TemplateError(Exception):
    """Parse or execution error; the message mimics Go's ("template: :LINE: ...")."""


class _Missing:
    """Go's invalid reflect.Value (e.g. a missing map key): prints "<no value>"."""
    __slots__ = ()

    def __repr__(self):
        return "<no value>"


MISSING = _Missing()
_NOFINAL = object()          # "no value piped in from a previous command"
_SPACE = " \t\r\n"


class _Fail(Exception):
    """Execution failure; the executor adds Go's location/context prefix."""


class _CallError(_Fail):
    """A failure reported by a function; Go prefixes it with "error calling NAME"."""


class _Loop(Exception):
    """Raised by {{break}} / {{continue}}; args[0] is which one."""


# ---------------------------------------------------------------- lexer

class _Tok:
    __slots__ = ("kind", "val", "pos", "end", "spaced")

    def __init__(self, kind, val, pos, end, spaced):
        self.kind, self.val, self.pos, self.end, self.spaced = kind, val, pos, end, spaced


_TOKEN_RE = re.compile(r"""
    (?P<string>"(?:[^"\\\n]|\\.)*")
  | (?P<raw>`[^`]*`)
  | (?P<number>[+-]?(?:0[xX][0-9a-fA-F_]+|0[bB][01_]+|0[oO][0-7_]+
                      |(?:\d[\d_]*(?:\.[\d_]*)?|\.\d[\d_]*)(?:[eE][+-]?\d+)?))
  | (?P<field>\.[^\W\d]\w*)
  | (?P<var>\$\w*)
  | (?P<ident>[^\W\d]\w*)
  | (?P<op>:=|[|(),=.])
""", re.X)
_ESCAPE_RE = re.compile(r"""\\(?:([abfnrtv\\'"])|x([0-9a-fA-F]{2})|u([0-9a-fA-F]{4})"""
                        r"""|U([0-9a-fA-F]{8})|([0-7]{3})|(.))""", re.S)
_SIMPLE_ESC = {"a": "\a", "b": "\b", "f": "\f", "n": "\n", "r": "\r", "t": "\t",
               "v": "\v", "\\": "\\", "'": "'", '"': '"'}
_KEYWORDS = {"if", "else", "end", "range", "with", "break", "continue",
             "define", "template", "block"}
_UNTERMINATED = {'"': "unterminated quoted string", "`": "unterminated raw quoted string"}


def _line(src, pos):
    return src.count("\n", 0, pos) + 1


def _syntax(src, pos, msg):
    return TemplateError(f"template: :{_line(src, pos)}: {msg}")


def _unquote(src, pos, body):
    def one(m):
        simple, x, u, big_u, octal, bad = m.groups()
        if bad is not None:
            raise _syntax(src, pos, f"invalid syntax: unknown escape \\{bad}")
        if simple:
            return _SIMPLE_ESC[simple]
        return chr(int(octal, 8)) if octal else chr(int(x or u or big_u, 16))
    return _ESCAPE_RE.sub(one, body)


def _number(src, pos, text):
    digits = text.replace("_", "")
    try:
        if re.fullmatch(r"[+-]?0[0-7]+", digits):   # Go's legacy octal: 010 == 8
            return int(digits, 8)
        return int(digits, 0)
    except ValueError:
        pass
    try:
        return float(digits)
    except ValueError:
        raise _syntax(src, pos, f"bad number syntax: {text!r}") from None


def _lex_action(src, p):
    """Tokenize one action starting after "{{"; return (tokens, end_pos, trim_right)."""
    toks, n = [], len(src)
    while True:
        q = p
        while q < n and src[q] in _SPACE:
            q += 1
        if q >= n:
            raise _syntax(src, q, "unclosed action")
        if src.startswith("}}", q):
            return toks, q + 2, False
        if q > p and src.startswith("-}}", q):      # " -}}" trims following space
            return toks, q + 3, True
        m = _TOKEN_RE.match(src, q)
        if not m:
            c = src[q]
            raise _syntax(src, q, _UNTERMINATED.get(
                c, f"unrecognized character in action: U+{ord(c):04X} {c!r}"))
        kind, text, spaced, p = m.lastgroup, m.group(), q > p, m.end()
        if kind == "string":
            val = _unquote(src, q, text[1:-1])
        elif kind == "raw":
            kind, val = "string", text[1:-1]
        elif kind == "number":
            if p < n and (src[p].isalnum() or src[p] == "."):
                raise _syntax(src, q, f"bad number syntax: {src[q:p + 1]!r}")
            val = _number(src, q, text)
        elif kind == "field":
            val = text[1:]
        elif kind == "ident":
            if text in ("true", "false"):
                kind, val = "bool", text == "true"
            elif text == "nil":
                kind, val = "nil", None
            else:
                kind, val = ("kw" if text in _KEYWORDS else "ident"), text
        else:
            kind = val = text                        # operators/vars: kind is the text
            if text.startswith("$"):
                kind = "var"
        toks.append(_Tok(kind, val, q, p, spaced))


def _lex(src):
    """Split the source into text strings and (tokens, pos) action tuples."""
    items, pos, n, trim = [], 0, len(src), False
    while pos <= n:
        start = src.find("{{", pos)
        text = src[pos:] if start < 0 else src[pos:start]
        if trim:
            text = text.lstrip(_SPACE)
        if start < 0:
            if text:
                items.append(text)
            break
        p = start + 2
        if src.startswith("-", p) and src[p + 1:p + 2] in (" ", "\t", "\r", "\n"):
            text, p = text.rstrip(_SPACE), p + 2    # "{{- " trims preceding space
        if text:
            items.append(text)
        if src.startswith("/*", p):                  # comments produce nothing
            close = src.find("*/", p + 2)
            if close < 0:
                raise _syntax(src, start, "unclosed comment")
            q = close + 2
            while q < n and src[q] in _SPACE:
                q += 1
            if src.startswith("}}", q) and q == close + 2:
                pos, trim = q + 2, False
            elif src.startswith("-}}", q) and q > close + 2:
                pos, trim = q + 3, True
            else:
                raise _syntax(src, start, "comment ends before closing delimiter")
            continue
        toks, pos, trim = _lex_action(src, p)
        items.append((toks, start))
    return items


# ---------------------------------------------------------------- parse tree

class _Node:
    """Generic tree node: `kind` says what it is, other attributes vary by kind.

    field(names) var(name, names) dot lit(value) func(name) sub(pipe, names)
    cmd(args) pipe(decl, assign, cmds) action(pipe) if/with/range(pipe, body, alt)
    break continue -- every node knows its source span for error messages.
    """

    def __init__(self, kind, pos, end=None, **attrs):
        self.kind, self.pos, self.end = kind, pos, end
        self.__dict__.update(attrs)


class _Parser:
    def __init__(self, src):
        self.src, self.items, self.i = src, _lex(src), 0
        self.vars = ["$"]           # variables in scope, checked at parse time like Go
        self.range_depth = 0

    def err(self, pos, msg):
        return _syntax(self.src, pos, msg)

    def parse(self):
        nodes, stop = self.parse_list()
        if stop is not None:
            raise self.err(stop[0].pos, f"unexpected {{{{{stop[0].val}}}}}")
        return nodes

    def parse_list(self):
        """Parse until EOF or an {{end}}/{{else}}; return (nodes, stopping tokens|None)."""
        nodes = []
        while self.i < len(self.items):
            item = self.items[self.i]
            self.i += 1
            if isinstance(item, str):
                nodes.append(item)
                continue
            toks, pos = item
            if toks and toks[0].kind == "kw":
                if toks[0].val in ("end", "else"):
                    return nodes, toks
                nodes.append(self.parse_control(toks, pos))
            else:
                nodes.append(_Node("action", pos, pipe=self.parse_pipe(toks, [0], pos, True)))
        return nodes, None

    def parse_control(self, toks, pos):
        kw = toks[0].val
        if kw in ("break", "continue"):
            self.alone(toks)
            if not self.range_depth:
                raise self.err(pos, f"{{{{{kw}}}}} outside {{{{range}}}}")
            return _Node(kw, pos)
        if kw not in ("if", "with", "range"):
            raise self.err(pos, f'"{kw}" actions are not supported')
        mark = len(self.vars)       # variables declared here live until {{end}}
        pipe = self.parse_pipe(toks, [1], pos, True, two_vars=(kw == "range"))
        self.range_depth += kw == "range"
        body, stop = self.parse_list()
        self.range_depth -= kw == "range"
        alt = None
        if stop and stop[0].val == "else" and stop[1:] and stop[1].kind == "kw" \
                and stop[1].val == kw != "range":
            alt = [self.parse_control(stop[1:], stop[1].pos)]   # "else if" shares our {{end}}
        else:
            if stop and stop[0].val == "else":
                self.alone(stop)
                alt, stop = self.parse_list()
            if stop is None:
                raise self.err(len(self.src), "unexpected EOF")
            if stop[0].val != "end":
                raise self.err(stop[0].pos, "expected end; found {{else}}")
            self.alone(stop)
        del self.vars[mark:]
        return _Node(kw, pos, pipe=pipe, body=body, alt=alt)

    def alone(self, toks):
        """Keyword-only actions ({{else}}, {{end}}, {{break}}) take no arguments."""
        if len(toks) > 1:
            raise self.err(toks[1].pos, f"unexpected {toks[1].val!r} in {toks[0].val}")

    def parse_pipe(self, toks, at, pos, decl_ok, two_vars=False, paren=False):
        """Parse `[$a[, $b] :=|=] cmd | cmd ...` from toks[at[0]:]; `at` is a shared cursor."""
        kinds = [t.kind for t in toks[at[0]:at[0] + 4]]
        names, assign = [], False
        if decl_ok and kinds[:2] in (["var", ":="], ["var", "="]):
            names, assign = [toks[at[0]].val], kinds[1] == "="
        elif decl_ok and two_vars and kinds[:4] in (["var", ",", "var", ":="], ["var", ",", "var", "="]):
            names, assign = [toks[at[0]].val, toks[at[0] + 2].val], kinds[3] == "="
        at[0] += 2 * len(names)
        if assign:
            for name in names:
                self.check_var(name, pos)
        cmds = []
        while True:
            start, args = at[0], []
            while at[0] < len(toks) and toks[at[0]].kind not in ("|", ")"):
                args.append(self.parse_operand(toks, at, pos))
            if not args:
                raise self.err(toks[start].pos if start < len(toks) else pos,
                               "missing value for command")
            cmds.append(_Node("cmd", toks[start].pos, toks[at[0] - 1].end, args=args))
            if at[0] >= len(toks):
                if paren:
                    raise self.err(pos, "unclosed left paren")
                break
            if toks[at[0]].kind == ")":
                if not paren:
                    raise self.err(toks[at[0]].pos, "unexpected right paren")
                break
            at[0] += 1              # skip "|"
        if not assign:
            self.vars.extend(names)
        return _Node("pipe", pos, decl=names, assign=assign, cmds=cmds)

    def check_var(self, name, pos):
        if name not in self.vars:
            raise self.err(pos, f'undefined variable "{name}"')

    def parse_operand(self, toks, at, pos):
        t = toks[at[0]]
        at[0] += 1
        if t.kind == "field":
            node = _Node("field", t.pos, names=[t.val])
        elif t.kind == "var":
            self.check_var(t.val, t.pos)
            node = _Node("var", t.pos, name=t.val, names=[])
        elif t.kind == ".":
            node = _Node("dot", t.pos)
        elif t.kind in ("string", "number", "bool", "nil"):
            node = _Node("lit", t.pos, value=t.val)
        elif t.kind == "ident":
            if t.val not in _FUNCS:
                raise self.err(t.pos, f'function "{t.val}" not defined')
            node = _Node("func", t.pos, name=t.val)
        elif t.kind == "(":
            node = _Node("sub", t.pos, pipe=self.parse_pipe(toks, at, pos, False, paren=True),
                         names=[])
            at[0] += 1              # skip ")"
        else:
            raise self.err(t.pos, f"unexpected {t.val!r} in operand")
        # Fields glued to a term (no space) chain onto it: .A.B, $x.A, (pipe).A
        while at[0] < len(toks) and toks[at[0]].kind == "field" and not toks[at[0]].spaced:
            if node.kind not in ("field", "var", "sub"):
                raise self.err(toks[at[0]].pos, "unexpected . after term")
            node.names.append(toks[at[0]].val)
            at[0] += 1
        node.end = toks[at[0] - 1].end
        return node


# ---------------------------------------------------------------- values

def _go_type(v):
    """Go's name for the type a JSON-decoded value would have (for messages)."""
    if v is None or v is MISSING:
        return "<nil>"
    for py, go in ((bool, "bool"), (int, "int"), (float, "float64"), (str, "string"),
                   ((list, tuple), "[]interface {}"), (dict, "map[string]interface {}")):
        if isinstance(v, py):
            return go
    return type(v).__name__


def _truth(v):
    if v is MISSING or v is None:
        return False
    if isinstance(v, (bool, int, float, str, list, tuple, dict)):
        return bool(v)
    return True


def _go_float(f, json_style=False):
    """Format a float like Go's %v (shortest 'g'), or like encoding/json."""
    if f != f or f in (float("inf"), float("-inf")):
        if json_style:
            raise _CallError(f"json: unsupported value: {f}")
        return "NaN" if f != f else ("+Inf" if f > 0 else "-Inf")
    if f == 0:
        return "-0" if str(f).startswith("-") else "0"
    mant, _, e = repr(abs(f)).partition("e")     # repr is the shortest round-trip
    ip, _, fp = mant.partition(".")
    digits = (ip + fp).lstrip("0")
    dp = len(ip) + int(e or 0) - (len(ip + fp) - len(digits))   # value = 0.DIGITS * 10**dp
    digits = digits.rstrip("0")
    exp = dp - 1
    if json_style:
        use_e = abs(f) < 1e-6 or abs(f) >= 1e21
    else:
        use_e = exp < -4 or exp >= 6           # strconv 'g' with shortest precision
    if use_e:
        width = "" if json_style else "02"     # json writes e-7, fmt writes e-07
        out = digits[0] + ("." + digits[1:] if len(digits) > 1 else "")
        out += f"e{'-' if exp < 0 else '+'}{abs(exp):{width}d}"
    elif dp <= 0:
        out = "0." + "0" * -dp + digits
    elif dp >= len(digits):
        out = digits + "0" * (dp - len(digits))
    else:
        out = digits[:dp] + "." + digits[dp:]
    return ("-" if f < 0 else "") + out


def _fmt(v):
    """Go's fmt %v for JSON-like values."""
    if v is MISSING:
        return "<no value>"
    if v is None:
        return "<nil>"
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, str):
        return v
    if isinstance(v, float):
        return _go_float(v)
    if isinstance(v, (list, tuple)):
        return "[" + " ".join(map(_fmt, v)) + "]"
    if isinstance(v, GoStruct):     # fmt prints a struct's fields in their declared order
        return "{" + " ".join(map(_fmt, v.values())) + "}"
    if isinstance(v, dict):    # fmt prints maps with sorted keys
        return "map[" + " ".join(f"{_fmt(k)}:{_fmt(v[k])}" for k in sorted(v)) + "]"
    return str(v)


def _field(v, name):
    """`.Name` on a value: exact key, then case-insensitive; nil/missing stay missing."""
    if v is None or v is MISSING:
        return MISSING
    if isinstance(v, dict):
        if name in v:
            return v[name]
        low = name.lower()
        for key in v:
            if isinstance(key, str) and key.lower() == low:
                return v[key]
        return MISSING
    raise _Fail(f"can't evaluate field {name} in type {_go_type(v)}")


# ---------------------------------------------------------------- functions

def _want(v, kind):
    ok = isinstance(v, str) if kind == "string" else isinstance(v, int) and not isinstance(v, bool)
    if not ok:
        raise _Fail(f"wrong type for value; expected {kind}; got {_go_type(v)}")
    return v


def _kind(v):
    if v is None or v is MISSING:
        return "nil"
    if isinstance(v, bool):
        return "bool"
    # Go refuses int-vs-float64; we compare numerically since JSON blurs the two.
    if isinstance(v, (int, float)):
        return "number"
    return "string" if isinstance(v, str) else "other"


def _eq(a, *others):
    if not others:
        raise _CallError("missing argument for comparison")
    for b in others:
        ka, kb = _kind(a), _kind(b)
        if "nil" in (ka, kb):
            if ka == kb:
                return True
            continue
        if "other" in (ka, kb):
            raise _CallError("non-comparable type")
        if ka != kb:
            raise _CallError("incompatible types for comparison")
        if a == b:
            return True
    return False


def _lt(a, b):
    ka, kb = _kind(a), _kind(b)
    if ka not in ("number", "string") or kb not in ("number", "string"):
        raise _CallError("invalid type for comparison")
    if ka != kb:
        raise _CallError("incompatible types for comparison")
    return a < b


def _index(item, *keys):
    for key in keys:
        if item is None or item is MISSING:
            raise _CallError("index of untyped nil")
        if isinstance(item, dict):
            if not isinstance(key, str):
                raise _CallError(f"value has type {_go_type(key)}; should be string")
            item = item.get(key, MISSING)    # Go yields the zero value: "<no value>"
        elif isinstance(item, (list, tuple, str)):
            if isinstance(key, bool) or not isinstance(key, int):
                raise _CallError(f"cannot index slice/array with type {_go_type(key)}")
            seq = item.encode() if isinstance(item, str) else item   # Go strings are bytes
            if not 0 <= key < len(seq):
                raise _CallError(f"index out of range: {key}")
            item = seq[key]
        else:
            raise _CallError(f"can't index item of type {_go_type(item)}")
    return item


def _len(v):
    if isinstance(v, str):
        return len(v.encode())    # Go's len counts bytes
    if isinstance(v, (list, tuple, dict)):
        return len(v)
    raise _CallError("len of nil pointer" if v is None else f"len of type {_go_type(v)}")


def _join(items, sep):
    _want(sep, "string")
    if items is None:             # a nil []string joins to ""
        return ""
    if not isinstance(items, (list, tuple)):
        raise _Fail(f"wrong type for value; expected []string; got {_go_type(items)}")
    return sep.join(map(_fmt, items))


def _title(s):
    """strings.Title: upper-case letters that follow a separator."""
    out, prev = [], " "
    for c in _want(s, "string"):
        sep = not (prev.isalnum() or prev == "_") if prev.isascii() else prev.isspace()
        t = c.title() if sep else c
        out.append(t if len(t) == 1 else c)
        prev = c
    return "".join(out)


def _sprint(*args):
    """fmt.Sprint: a space goes between operands when neither is a string."""
    out = []
    for i, a in enumerate(args):
        if i and not isinstance(a, str) and not isinstance(args[i - 1], str):
            out.append(" ")
        out.append(_fmt(a))
    return "".join(out)


_VERB_RE = re.compile(r"%([-+# 0]*)(\d*)(?:\.(\d+))?(.?)", re.S)


def _printf(fmt, *args):
    """fmt.Sprintf for the common verbs (v s d q x f t %) with flags/width/precision."""
    _want(fmt, "string")
    out, used, last = [], 0, 0
    for m in _VERB_RE.finditer(fmt):
        out.append(fmt[last:m.start()])
        last = m.end()
        flags, width, prec, verb = m.groups()
        if verb == "%":
            out.append("%")
            continue
        if not verb:
            out.append("%!(NOVERB)")
            continue
        if used >= len(args):
            out.append(f"%!{verb}(MISSING)")
            continue
        a, used = args[used], used + 1
        num = isinstance(a, (int, float)) and not isinstance(a, bool)
        sign = "+" if "+" in flags else ""
        if verb == "v" or (verb == "s" and not num and a is not None and not isinstance(a, bool)):
            s = _fmt(a)
            s = s[:int(prec)] if prec and verb == "s" else s
        elif verb == "d" and num and isinstance(a, int):
            s = format(a, sign + "d")
        elif verb == "q" and isinstance(a, str):
            s = json.dumps(a, ensure_ascii=False)   # ~strconv.Quote (differs for control chars)
        elif verb == "x" and num and isinstance(a, int):
            s = format(a, "x")
        elif verb == "f" and num:
            s = format(a, f"{sign}.{prec or 6}f")
        elif verb == "t" and isinstance(a, bool):
            s = _fmt(a)
        else:
            s = f"%!{verb}(<nil>)" if a is None else f"%!{verb}({_go_type(a)}={_fmt(a)})"
        width = int(width or 0)
        fill = width - len(s)
        if fill > 0:
            if "-" in flags:
                s += " " * fill
            elif "0" in flags and num and s[:1] in "+-":
                s = s[0] + "0" * fill + s[1:]
            else:
                s = ("0" if "0" in flags else " ") * fill + s
        out.append(s)
    out.append(fmt[last:])
    if used < len(args):
        extra = ", ".join(f"{_go_type(a)}={_fmt(a)}" for a in args[used:])
        out.append(f"%!(EXTRA {extra})")
    return "".join(out)


_JSON_HTML = str.maketrans({"<": "\\u003c", ">": "\\u003e", "&": "\\u0026"})
_JSON_LINESEP = str.maketrans({"\u2028": "\\u2028", "\u2029": "\\u2029"})  # Go always escapes


def _json_value(v):
    """encoding/json: compact, key order preserved, non-ASCII kept, Go float format."""
    if v is None or v is MISSING:
        return "null"
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, str):
        return json.dumps(v, ensure_ascii=False)
    if isinstance(v, int):
        return str(v)
    if isinstance(v, float):
        return _go_float(v, json_style=True)
    if isinstance(v, dict):
        return "{" + ",".join(f"{json.dumps(str(k), ensure_ascii=False)}:{_json_value(x)}"
                              for k, x in v.items()) + "}"
    if isinstance(v, (list, tuple)):
        return "[" + ",".join(map(_json_value, v)) + "]"
    raise _CallError(f"json: unsupported type: {type(v).__name__}")


def _json(v):
    # <, >, & and U+2028/9 only ever occur inside JSON strings, so escape afterwards.
    s = _json_value(v).translate(_JSON_LINESEP)
    return s.translate(_JSON_HTML) if JSON_ESCAPE_HTML else s


def _pad(s, prefix, suffix):
    _want(s, "string"), _want(prefix, "int"), _want(suffix, "int")
    return " " * prefix + s + " " * suffix if s else s


def _truncate(s, n):
    _want(s, "string"), _want(n, "int")
    return s if len(s) < n else s[:max(n, 0)]


def _split(s, sep):
    _want(s, "string"), _want(sep, "string")
    return list(s) if sep == "" else s.split(sep)


# name -> (implementation, min args, max args or None); and/or short-circuit in _Exec.
_FUNCS = {
    "and": (None, 1, None), "or": (None, 1, None),
    "not": (lambda v: not _truth(v), 1, 1),
    "eq": (_eq, 1, None), "ne": (lambda a, b: not _eq(a, b), 2, 2),
    "lt": (_lt, 2, 2), "le": (lambda a, b: _lt(a, b) or _eq(a, b), 2, 2),
    "gt": (lambda a, b: not (_lt(a, b) or _eq(a, b)), 2, 2),
    "ge": (lambda a, b: not _lt(a, b), 2, 2),
    "index": (_index, 1, None), "len": (_len, 1, 1),
    "print": (_sprint, 0, None), "printf": (_printf, 1, None),
    "println": (lambda *a: " ".join(map(_fmt, a)) + "\n", 0, None),
    "json": (_json, 1, 1), "join": (_join, 2, 2), "split": (_split, 2, 2),
    "upper": (lambda s: _want(s, "string").upper(), 1, 1),
    "lower": (lambda s: _want(s, "string").lower(), 1, 1),
    "title": (_title, 1, 1), "pad": (_pad, 3, 3), "truncate": (_truncate, 2, 2),
}


# ---------------------------------------------------------------- execution

class _Exec:
    def __init__(self, src, data):
        self.src, self.out = src, []
        self.vars = [["$", data]]     # a stack; control blocks truncate it on exit

    def error(self, node, msg):
        col = node.pos - self.src.rfind("\n", 0, node.pos) - 1
        ctx = self.src[node.pos:node.end]
        return TemplateError(f'template: :{_line(self.src, node.pos)}:{col}: '
                             f'executing "" at <{ctx}>: {msg}')

    def walk(self, nodes, dot):
        for node in nodes:
            if isinstance(node, str):
                self.out.append(node)
            elif node.kind == "action":
                value = self.pipe(node.pipe, dot)
                if not node.pipe.decl:          # {{$x := ...}} prints nothing
                    self.out.append(_fmt(value))
            elif node.kind == "range":
                self.range(node, dot)
            elif node.kind in ("if", "with"):
                mark = len(self.vars)
                value = self.pipe(node.pipe, dot)
                if _truth(value):
                    self.walk(node.body, value if node.kind == "with" else dot)
                elif node.alt is not None:
                    self.walk(node.alt, dot)
                del self.vars[mark:]
            else:
                raise _Loop(node.kind)

    def range(self, node, dot):
        value = self.pipe(node.pipe, dot, bind=False)   # variables bind per element
        if isinstance(value, dict):
            pairs = [(k, value[k]) for k in sorted(value)]
        elif isinstance(value, (list, tuple)):
            pairs = list(enumerate(value))
        elif isinstance(value, int) and not isinstance(value, bool):   # Go 1.22 range-over-int
            pairs = [(i, i) for i in range(value)]
        elif value is None or value is MISSING:
            pairs = []
        else:
            raise self.error(node.pipe.cmds[0], f"range can't iterate over {_fmt(value)}")
        if not pairs:
            if node.alt is not None:
                self.walk(node.alt, dot)
            return
        names, mark = node.pipe.decl, len(self.vars)
        for key, elem in pairs:
            self.bind(names, [elem] if len(names) == 1 else [key, elem], node.pipe.assign)
            try:
                self.walk(node.body, elem)
            except _Loop as signal:
                if signal.args[0] == "break":
                    break
            finally:
                del self.vars[mark:]

    def bind(self, names, values, assign):
        for name, value in zip(names, values):
            if assign:
                next(v for v in reversed(self.vars) if v[0] == name)[1] = value
            else:
                self.vars.append([name, value])

    def lookup(self, name):
        for var in reversed(self.vars):
            if var[0] == name:
                return var[1]
        raise _Fail(f"undefined variable: {name}")

    def pipe(self, pipe, dot, bind=True):
        value = _NOFINAL
        for cmd in pipe.cmds:
            value = self.command(cmd, dot, value)
        if pipe.decl and bind:
            self.bind(pipe.decl, [value], pipe.assign)
        return value

    def command(self, cmd, dot, final):
        first = cmd.args[0]
        try:
            if first.kind == "func":
                return self.call(first.name, cmd.args[1:], dot, final)
            if len(cmd.args) > 1 or final is not _NOFINAL:
                raise _Fail(f"can't give argument to non-function {self.src[first.pos:first.end]}")
            if first.kind == "lit" and first.value is None:
                raise _Fail("nil is not a command")
            return self.arg(first, dot)
        except _Fail as e:
            raise self.error(cmd, str(e)) from None

    def arg(self, node, dot):
        kind = node.kind
        if kind == "lit":
            return node.value
        if kind == "dot":
            return dot
        if kind == "func":
            return self.call(node.name, [], dot, _NOFINAL)
        value = dot if kind == "field" else self.lookup(node.name) if kind == "var" \
            else self.pipe(node.pipe, dot)
        for name in node.names:
            value = _field(value, name)
        return value

    def call(self, name, nodes, dot, final):
        fn, lo, hi = _FUNCS[name]
        count = len(nodes) + (final is not _NOFINAL)
        if count < lo or (hi is not None and count > hi):
            want = lo if lo == hi else f"at least {lo}"
            raise _Fail(f"wrong number of args for {name}: want {want} got {count}")
        if fn is None:    # and/or: evaluate lazily, return the deciding operand
            value = None
            for node in nodes:
                value = self.arg(node, dot)
                if _truth(value) == (name == "or"):
                    return value
            return final if final is not _NOFINAL else value
        args = [self.arg(node, dot) for node in nodes]
        if final is not _NOFINAL:
            args.append(final)
        try:    # a missing value reaches a Go function as nil
            return fn(*[None if a is MISSING else a for a in args])
        except _CallError as e:
            raise _Fail(f"error calling {name}: {e}") from None


# ---------------------------------------------------------------- API

class Template:
    """A parsed template; immutable, so instances can be cached and shared."""
    __slots__ = ("source", "_nodes")

    def __init__(self, source):
        self.source = source
        self._nodes = _Parser(source).parse()

    def execute(self, data):
        ex = _Exec(self.source, data)
        ex.walk(self._nodes, data)
        return "".join(ex.out)

    def __repr__(self):
        return f"Template({self.source!r})"


@lru_cache(maxsize=128)
def compile_template(template: str) -> Template:
    if not isinstance(template, str):
        raise TypeError("template must be a str")
    return Template(template)


def render(template: str, data) -> str:
    return compile_template(template).execute(data)
