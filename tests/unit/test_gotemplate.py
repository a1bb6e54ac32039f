"""Tests for app.cli.gotemplate (Go text/template subset used by --format)."""
import pytest

from app.cli import gotemplate
from app.cli.gotemplate import Template, TemplateError, compile_template, render

EVENT = {"Type": "container", "Action": "start", "Actor": {"ID": "abc123",
         "Attributes": {"image": "alpine", "name": "web"}}, "time": 1700000000,
         "timeNano": 1700000000123456789, "status": "start", "id": "abc123"}

CONTAINER = {
    "Id": "deadbeef",
    "Name": "/web",
    "Names": ["/web", "/alias"],
    "Config": {
        "Cmd": ["sh", "-c", "echo hi"],
        "Env": ["A=1", "B=2"],
        "Labels": {"a.b": "dotted", "com.example": "ex", "zeta": "z"},
        "Image": "alpine:3.19",
        "Tty": False,
        "Entrypoint": None,
    },
    "State": {"Running": True, "Status": "running", "ExitCode": 0, "Pid": 42, "Health": None},
    "Labels": {"b": "2", "a": "1"},
    "List": [1, 2, 3],
    "Empty": [],
    "EmptyMap": {},
    "Ports": {"80/tcp": [{"HostIp": "0.0.0.0", "HostPort": "8080"}]},
    "Size": 3.0,
    "Ratio": 0.25,
}


def r(tmpl, data=CONTAINER):
    return render(tmpl, data)


# ------------------------------------------------------------ docker-ish templates

@pytest.mark.parametrize("tmpl,expected", [
    ("{{range .Names}}{{.}},{{end}}", "/web,/alias,"),
    ('{{index .Config.Labels "a.b"}}', "dotted"),
    ('{{join .Config.Cmd " "}}', "sh -c echo hi"),
    ("{{if .State.Running}}up{{else}}down{{end}}", "up"),
    ("{{range $k, $v := .Labels}}{{$k}}={{$v}};{{end}}", "a=1;b=2;"),
    ("{{json .Config.Cmd}}", '["sh","-c","echo hi"]'),
    ("{{.Missing}}", "<no value>"),
    ("{{len .List}}", "3"),
    ("{{.Name}}", "/web"),
    ("{{.Config.Image}}", "alpine:3.19"),
    ("{{.State.Pid}}", "42"),
    ("{{.Config.Env}}", "[A=1 B=2]"),
    ("{{.Config.Cmd}}", "[sh -c echo hi]"),
    ("{{.Labels}}", "map[a:1 b:2]"),
    ("{{.State.Health}}", "<nil>"),
    ("{{.Config.Tty}}", "false"),
    ("{{range $p, $conf := .Ports}}{{$p}} -> {{(index $conf 0).HostPort}}{{end}}",
     "80/tcp -> 8080"),
    ("{{range $conf := .Config.Env}}[{{$conf}}]{{end}}", "[A=1][B=2]"),
    ("{{with .State}}{{.Status}}/{{.Pid}}{{end}}", "running/42"),
    ("{{if eq .State.ExitCode 0}}ok{{end}}", "ok"),
    ("{{.Id | printf \"%.4s\"}}", "dead"),
    ("{{truncate .Id 4}}", "dead"),
    ("{{upper .Name}}", "/WEB"),
    ('{{split .Config.Image ":"}}', "[alpine 3.19]"),
    ('{{index (split .Config.Image ":") 1}}', "3.19"),
])
def test_docker_templates(tmpl, expected):
    assert r(tmpl) == expected


def test_event_template_with_json():
    out = render("{{.Type}} {{.Action}} {{json .}}", EVENT)
    assert out == (
        'container start {"Type":"container","Action":"start","Actor":{"ID":"abc123",'
        '"Attributes":{"image":"alpine","name":"web"}},"time":1700000000,'
        '"timeNano":1700000000123456789,"status":"start","id":"abc123"}')


@pytest.mark.parametrize("tmpl,expected", [
    ("{{.ID}}", "abc123"),               # only "id" exists
    ("{{.TimeNano}}", "1700000000123456789"),
    ("{{.Status}}", "start"),
    ("{{.Time}}", "1700000000"),
    ("{{.Actor.Attributes.name}}", "web"),
    ("{{.Actor.attributes.NAME}}", "web"),
])
def test_case_insensitive_lookup(tmpl, expected):
    assert render(tmpl, EVENT) == expected


def test_exact_key_wins_over_case_insensitive():
    assert render("{{.id}} {{.ID}} {{.Id}}", {"Id": "x", "id": "y"}) == "y x x"


# ------------------------------------------------------------ text and trimming

@pytest.mark.parametrize("tmpl,expected", [
    ("", ""),
    ("plain text", "plain text"),
    ("a } b { c }} d", "a } b { c }} d"),
    ("x  {{- .Name -}}  y", "x/weby"),
    ("x \n\t{{- .Name}} y", "x/web y"),
    ("x {{.Name -}} \n y", "x /weby"),
    ("{{.Name}}\n", "/web\n"),
    ("a{{/* a comment */}}b", "ab"),
    ("a {{- /* trimmed */ -}} b", "ab"),
    ("a{{/* multi\nline */}}b", "ab"),
    ("{{-3}}", "-3"),                  # "{{-" without a space is a negative number
    ("{{3 -}} x", "3x"),
    ('{{"}}"}}', "}}"),                # delimiters inside strings do not close the action
])
def test_text_and_trim(tmpl, expected):
    assert r(tmpl) == expected


# ------------------------------------------------------------ value printing

@pytest.mark.parametrize("value,expected", [
    ("str", "str"),
    (True, "true"),
    (False, "false"),
    (None, "<nil>"),
    (0, "0"),
    (-17, "-17"),
    (3.0, "3"),
    (2.5, "2.5"),
    (-0.125, "-0.125"),
    (1e6, "1e+06"),
    (123456.0, "123456"),
    (1234567.0, "1.234567e+06"),
    (0.0001, "0.0001"),
    (0.00001, "1e-05"),
    (0.0, "0"),
    ([1, "a", None, True], "[1 a <nil> true]"),
    ([[1, 2], []], "[[1 2] []]"),
    ({"b": 1, "a": [2, 3], "c": {"y": None, "x": "s"}}, "map[a:[2 3] b:1 c:map[x:s y:<nil>]]"),
    ({}, "map[]"),
    ([], "[]"),
])
def test_print_values(value, expected):
    assert render("{{.}}", value) == expected


# ------------------------------------------------------------ fields, variables, nil

@pytest.mark.parametrize("tmpl,expected", [
    ("{{.Missing.Deeper}}", "<no value>"),
    ("{{.State.Health.Status}}", "<no value>"),      # field access on nil
    ("{{.Config.Entrypoint}}", "<nil>"),
    ("{{$.State.Pid}}", "42"),
    ("{{$x := .State}}{{$x.Pid}}", "42"),
    ("{{$x := .State.Pid}}{{$x = 5}}{{$x}}", "5"),
    ("{{$x := 1}}", ""),                             # declarations print nothing
    ("{{with .State}}{{$.Name}}{{.Pid}}{{end}}", "/web42"),
])
def test_fields_and_variables(tmpl, expected):
    assert r(tmpl) == expected


def test_root_variable():
    assert render("{{$}} {{$.a}}", {"a": 1}) == "map[a:1] 1"


def test_variable_scope_ends_with_block():
    with pytest.raises(TemplateError, match=r'undefined variable "\$y"'):
        render("{{if true}}{{$y := 1}}{{end}}{{$y}}", {})


def test_range_variables_index_and_value():
    assert r("{{range $i, $v := .Names}}{{$i}}:{{$v}} {{end}}") == "0:/web 1:/alias "
    assert r("{{range $i, $e := .Ports}}{{$i}}={{len $e}}{{end}}") == "80/tcp=1"


def test_root_variable_inside_range():
    assert r("{{range .List}}{{$.Name}}{{.}} {{end}}") == "/web1 /web2 /web3 "


# ------------------------------------------------------------ literals

@pytest.mark.parametrize("tmpl,expected", [
    ('{{"a\\tb\\n\\"q\\" \\u00e9 \\x41"}}', 'a\tb\n"q" é A'),
    ("{{`raw \\n {{x}}`}}", "raw \\n {{x}}"),
    ("{{42}} {{-7}} {{0x1F}} {{010}} {{1_000}}", "42 -7 31 8 1000"),
    ("{{1.5}} {{2.0}} {{1e3}}", "1.5 2 1000"),
    ("{{true}} {{false}}", "true false"),
    ("{{print nil}}", "<nil>"),
])
def test_literals(tmpl, expected):
    assert render(tmpl, {}) == expected


# ------------------------------------------------------------ pipelines and calls

@pytest.mark.parametrize("tmpl,expected", [
    ("{{.Name | upper}}", "/WEB"),
    ("{{.Name | upper | lower}}", "/web"),
    ("{{. | json}}", '{"b":"2","a":"1"}'),
    ('{{index .Labels "a" | printf "<%s>"}}', "<1>"),
    ("{{len (index .Ports \"80/tcp\")}}", "1"),
    ("{{(index .Ports \"80/tcp\" 0).HostIp}}", "0.0.0.0"),
    ("{{index .List 0}}", "1"),
    ("{{index .Names 1}}", "/alias"),
    ('{{index .Labels "nope"}}', "<no value>"),
    ('{{index .Ports "80/tcp" 0 "HostPort"}}', "8080"),
    ("{{index .Name 1}}", "119"),               # Go indexes strings by byte
    ("{{index .List}}", "[1 2 3]"),
])
def test_pipelines(tmpl, expected):
    assert render(tmpl, CONTAINER["Labels"] if tmpl == "{{. | json}}" else CONTAINER) == expected


# ------------------------------------------------------------ control structures

@pytest.mark.parametrize("tmpl,data,expected", [
    ("{{if .a}}A{{else if .b}}B{{else}}C{{end}}", {"a": 1, "b": 1}, "A"),
    ("{{if .a}}A{{else if .b}}B{{else}}C{{end}}", {"a": 0, "b": 1}, "B"),
    ("{{if .a}}A{{else if .b}}B{{else}}C{{end}}", {"a": 0, "b": 0}, "C"),
    ("{{if .a}}A{{else if .b}}B{{end}}", {}, ""),
    ("{{range .}}{{.}}{{else}}empty{{end}}", [], "empty"),
    ("{{range .}}{{.}}{{else}}empty{{end}}", None, "empty"),
    ("{{range .x}}{{.}}{{else}}empty{{end}}", {}, "empty"),
    ("{{range .}}{{.}};{{end}}", {"b": 2, "a": 1, "c": 3}, "1;2;3;"),
    ("{{range $k, $v := .}}{{$k}}{{end}}", {"b": 2, "a": 1}, "ab"),
    ("{{range .}}{{if eq . 3}}{{break}}{{end}}{{.}}{{end}}", [1, 2, 3, 4], "12"),
    ("{{range .}}{{if eq . 2}}{{continue}}{{end}}{{.}}{{end}}", [1, 2, 3], "13"),
    ("{{range 3}}{{.}}{{end}}", None, "012"),
    ("{{with .a}}[{{.}}]{{else}}none{{end}}", {"a": "x"}, "[x]"),
    ("{{with .a}}[{{.}}]{{else}}none{{end}}", {"a": ""}, "none"),
    ("{{with .a}}[{{.}}]{{else with .b}}<{{.}}>{{end}}", {"b": 2}, "<2>"),
    ("{{with $x := .a}}{{$x}}{{.}}{{end}}", {"a": 7}, "77"),
    ("{{if $x := .a}}{{$x}}{{else}}{{$x}}{{end}}", {"a": 0}, "0"),
    ("{{range .}}{{range .}}{{.}}{{end}}|{{end}}", [[1, 2], [3]], "12|3|"),
    ("{{range $i, $e := .}}{{$x := $e}}{{$x}}{{end}}", ["a", "b"], "ab"),
])
def test_control(tmpl, data, expected):
    assert render(tmpl, data) == expected


@pytest.mark.parametrize("value,truthy", [
    (False, False), (True, True), (0, False), (1, True), (0.0, False), (0.1, True),
    (None, False), ("", False), ("x", True), ([], False), ([0], True), ({}, False),
    ({"a": 1}, True),
])
def test_truthiness(value, truthy):
    assert render("{{if .v}}T{{else}}F{{end}}", {"v": value}) == ("T" if truthy else "F")
    assert render("{{if not .v}}F{{else}}T{{end}}", {"v": value}) == ("T" if truthy else "F")


def test_missing_is_falsy():
    assert render("{{if .nope}}T{{else}}F{{end}}", {}) == "F"


# ------------------------------------------------------------ functions

@pytest.mark.parametrize("tmpl,expected", [
    ('{{json .}}', '{"z":1,"a":[true,null,2.5,3],"s":"<b> & é",'
                   '"words":["x","y"],"nil":null}'),
    ('{{json .s}}', '"<b> & é"'),
    ("{{json .missing}}", "null"),
    ('{{json "\u2028"}}', '"\\u2028"'),
    ('{{json 1e-7}} {{json 1e21}} {{json 1e20}}', "1e-7 1e+21 100000000000000000000"),
    ("{{len .a}} {{len .s}} {{len .}}", "4 8 5"),   # len of a string counts UTF-8 bytes
    ('{{join .words ", "}}', "x, y"),
    ('{{join .nil "-"}}', ""),
    ('{{split "a,b,,c" ","}}', "[a b  c]"),
    ('{{split "abc" ""}}', "[a b c]"),
    ('{{upper "abc"}} {{lower "ABC"}}', "ABC abc"),
    ('{{title "hello wide-world foo_bar"}}', "Hello Wide-World Foo_bar"),
    ('{{println "a" 1 true}}', "a 1 true\n"),
    ('{{print "a" "b" 1 2 "c"}}', "ab1 2c"),
    ('{{printf "%s-%d-%v-%q-%%" "s" 5 .a "q"}}', 's-5-[true <nil> 2.5 3]-"q"-%'),
    ('{{printf "%5s|%-5s|%05d|%x|%t" "ab" "cd" 42 255 true}}', "   ab|cd   |00042|ff|true"),
    ('{{printf "%.2f %v" 3.14159 2.0}}', "3.14 2"),
    ('{{printf "%d"}}', "%!d(MISSING)"),
    ('{{printf "%d" "x"}}', "%!d(string=x)"),
    ('{{printf "a" 1}}', "a%!(EXTRA int=1)"),
    ('{{truncate "abcdef" 3}} {{truncate "ab" 3}}', "abc ab"),
    ('[{{pad "ab" 1 2}}] [{{pad "" 1 2}}]', "[ ab  ] []"),
    ('{{not true}} {{not 0}}', "false true"),
])
def test_functions(tmpl, expected):
    data = {"z": 1, "a": [True, None, 2.5, 3.0], "s": "<b> & é", "words": ["x", "y"], "nil": None}
    assert render(tmpl, data) == expected


def test_json_keeps_key_order_and_non_ascii():
    assert render("{{json .}}", {"b": "ü", "a": {"y": 1, "x": 2}}) == '{"b":"ü","a":{"y":1,"x":2}}'


@pytest.mark.parametrize("tmpl,expected", [
    ('{{eq 1 1}} {{eq 1 2}} {{eq "a" "a"}} {{eq .n 1.0}}', "true false true true"),
    ('{{eq 3 1 2 3}} {{eq 4 1 2 3}}', "true false"),
    ('{{eq .missing nil}} {{eq .x nil}} {{eq nil 1}}', "true false false"),
    ('{{ne 1 2}} {{ne "a" "a"}}', "true false"),
    ('{{lt 1 2}} {{lt 2 1}} {{le 2 2}} {{gt 3 2}} {{ge 2 3}}', "true false true true false"),
    ('{{lt "a" "b"}} {{gt 2.5 2}}', "true true"),
    ('{{and 1 "x"}} {{and 1 0 "x"}} {{or 0 "" "y"}} {{or 0 ""}}', "x 0 y "),
    ('{{or .missing "default"}}', "default"),
    ('{{and .x .missing.deep}}', "<no value>"),
    ('{{if and .x (not .missing)}}yes{{end}}', "yes"),
    ('{{.x | or false}}', "1"),
])
def test_comparisons_and_logic(tmpl, expected):
    assert render(tmpl, {"n": 1, "x": 1}) == expected


def test_and_or_short_circuit():
    # The erroring call is never evaluated because the first operand decides.
    assert render("{{or 1 (index .nil 0)}}{{and 0 (index .nil 0)}}", {"nil": None}) == "10"


# ------------------------------------------------------------ errors

@pytest.mark.parametrize("tmpl,message", [
    ("{{.Name", "template: :1: unclosed action"),
    ("a\n{{foo}}", 'template: :2: function "foo" not defined'),
    ("{{end}}", "template: :1: unexpected {{end}}"),
    ("{{else}}", "template: :1: unexpected {{else}}"),
    ("{{if .a}}x", "template: :1: unexpected EOF"),
    ("{{range .a}}x{{else}}y", "template: :1: unexpected EOF"),
    ("{{$x}}", 'template: :1: undefined variable "$x"'),
    ('{{"abc}}', "template: :1: unterminated quoted string"),
    ("{{}}", "template: :1: missing value for command"),
    ("{{.a | }}", "template: :1: missing value for command"),
    ("{{(.a}}", "template: :1: unclosed left paren"),
    ("{{.a)}}", "template: :1: unexpected right paren"),
    ("{{/* x }}", "template: :1: unclosed comment"),
    ("{{break}}", "template: :1: {{break}} outside {{range}}"),
    ("{{template \"x\"}}", 'template: :1: "template" actions are not supported'),
    ("{{if 1}}{{else \"if\"}}{{end}}", "template: :1: unexpected 'if' in else"),
    ("{{if 1}}{{else}}{{else}}{{end}}", "template: :1: expected end; found {{else}}"),
    ("{{if 1}}{{end 2}}", "template: :1: unexpected 2 in end"),
    ("{{range .a}}{{else if .b}}{{end}}", "template: :1: unexpected 'if' in else"),
    ("text {{", "template: :1: unclosed action"),
    ("{{#}}", "template: :1: unrecognized character in action: U+0023 '#'"),
    ("{{3x}}", "template: :1: bad number syntax: '3x'"),
])
def test_parse_errors(tmpl, message):
    with pytest.raises(TemplateError) as exc:
        compile_template(tmpl)
    assert str(exc.value) == message


@pytest.mark.parametrize("tmpl,message", [
    ("{{index .List 5}}",
     'template: :1:2: executing "" at <index .List 5>: error calling index: index out of range: 5'),
    ('{{index .List "a"}}', "cannot index slice/array with type string"),
    ("{{index .Labels 1}}", "value has type int; should be string"),
    ("{{index .Nil 0}}", "error calling index: index of untyped nil"),
    ("{{.Name.Foo}}", 'at <.Name.Foo>: can\'t evaluate field Foo in type string'),
    ("x\n {{len 3}}", 'template: :2:3: executing "" at <len 3>: error calling len: len of type int'),
    ("{{upper 1}}", "wrong type for value; expected string; got int"),
    ("{{upper}}", "wrong number of args for upper: want 1 got 0"),
    ("{{join .List}}", "wrong number of args for join: want 2 got 1"),
    ("{{and}}", "wrong number of args for and: want at least 1 got 0"),
    ("{{eq 1 \"a\"}}", "error calling eq: incompatible types for comparison"),
    ("{{lt true false}}", "error calling lt: invalid type for comparison"),
    ("{{eq .List .List}}", "error calling eq: non-comparable type"),
    ("{{range .Name}}{{end}}", "range can't iterate over /web"),
    ("{{.Name 1}}", "can't give argument to non-function .Name"),
    ("{{1 | .Name}}", "can't give argument to non-function .Name"),
    ("{{nil}}", "nil is not a command"),
])
def test_exec_errors(tmpl, message):
    with pytest.raises(TemplateError) as exc:
        render(tmpl, {"List": [1], "Labels": {}, "Nil": None, "Name": "/web"})
    assert message in str(exc.value)


def test_template_error_is_exception():
    assert issubclass(TemplateError, Exception)


# ------------------------------------------------------------ API

def test_compile_and_reuse():
    t = compile_template("{{.a}}-{{len .b}}")
    assert isinstance(t, Template)
    assert t.execute({"a": 1, "b": [1, 2]}) == "1-2"
    assert t.execute({"a": "x", "b": ""}) == "x-0"
    assert compile_template("{{.a}}-{{len .b}}") is t      # cached


def test_execution_is_independent_between_runs():
    t = compile_template("{{$x := .}}{{range .}}{{$x = .}}{{end}}{{$x}}")
    assert t.execute([1, 2]) == "2"
    assert t.execute([3]) == "3"


def test_json_html_escaping_switch(monkeypatch):
    assert render("{{json .}}", "<&>") == '"<&>"'  # docker CLI's default: no HTML escaping
    monkeypatch.setattr(gotemplate, "JSON_ESCAPE_HTML", True)
    assert render("{{json .}}", "<&>") == '"\\u003c\\u0026\\u003e"'
