// Oracle for sfd's Jinja interpreter (engine/data/jinja_*.h) feature by feature: small
// templates rendered by Python jinja2 configured like HF transformers' chat templates
// (ImmutableSandboxedEnvironment, trim_blocks, lstrip_blocks, loopcontrols, json.dumps tojson,
// raise_exception). Writes tests/fixtures/chat_templates/jinja_cases.jsonl:
// {"template", "context", "text"} or {"template", "context", "error": true}.
// Usage: node tests/oracle/chat_jinja_cases.mjs   (needs python3 with jinja2)
import { execSync } from "node:child_process";
import fs from "node:fs";
import path from "node:path";
import { fileURLToPath } from "node:url";

const here = path.dirname(fileURLToPath(import.meta.url));
const out = path.resolve(here, "../fixtures/chat_templates/jinja_cases.jsonl");

const msgs = [{ role: "system", content: " Sys " }, { role: "user", content: "Hi\nthere" },
              { role: "assistant", content: "<think>r</think>\n\nAns" }];
const CASES = [
  // whitespace control, trim_blocks / lstrip_blocks, comments
  ["a\n  {% if true %}\n  b\n  {% endif %}\nc", {}],
  ["a  {%- if true -%}  b  {%- endif -%}  c", {}],
  ["  {{ 'x' }}  \n{# c #}\n  {#- c2 -#}  y", {}],
  ["{% for i in [1,2] %}\n    {{ i }}\n{% endfor %}\n", {}],
  ["x {%+ if true %}y{% endif +%} \nz", {}],
  ["line\n\n", {}],
  // loops
  ["{% for m in messages %}{{ loop.index0 }}{{ loop.index }}{{ loop.first }}{{ loop.last }}{{ loop.length }}{{ loop.revindex }}|{% endfor %}", { messages: msgs }],
  ["{% for x in xs if x > 1 %}{{ x }}{% else %}none{% endfor %}", { xs: [1, 2, 3] }],
  ["{% for x in [] %}{{ x }}{% else %}empty{% endfor %}", {}],
  ["{% for k, v in d.items() %}{{ k }}={{ v }};{% endfor %}", { d: { b: 1, a: 2 } }],
  ["{% for x in [1,2,3,4] %}{% if x == 2 %}{% continue %}{% endif %}{% if x == 4 %}{% break %}{% endif %}{{ x }}{% endfor %}", {}],
  ["{% for c in 'héllo' %}[{{ c }}]{% endfor %}", {}],
  ["{% for x in xs %}{{ loop.previtem }}-{{ loop.nextitem }},{% endfor %}", { xs: [1, 2, 3] }],
  // scoping and namespace
  ["{% set x = 1 %}{% for i in [1,2] %}{% set x = x + i %}{{ x }}{% endfor %}{{ x }}", {}],
  ["{% set ns = namespace(n=0) %}{% for i in [1,2,3] %}{% set ns.n = ns.n + i %}{% endfor %}{{ ns.n }}", {}],
  ["{% if true %}{% set y = 5 %}{% endif %}{{ y }}", {}],
  ["{% set a, b = 1, 2 %}{{ a }}{{ b }}", {}],
  ["{% set blk %}inner {{ 1 + 1 }}{% endset %}[{{ blk }}]", {}],
  ["{% macro m(a, b='d') %}<{{ a }}{{ b }}>{% endmacro %}{{ m(1) }}{{ m(2, b='x') }}", {}],
  // expressions
  ["{{ 1 + 2 * 3 }} {{ 7 // 2 }} {{ -7 // 2 }} {{ 7 % 3 }} {{ -7 % 3 }} {{ 2 ** 10 }} {{ 7 / 2 }} {{ 1.5 + 1 }}", {}],
  ["{{ 'a' ~ 1 ~ none ~ true }} {{ 'a' + 'b' }} {{ [1] + [2] }}", {}],
  ["{{ 1 < 2 < 3 }} {{ 3 > 2 > 5 }} {{ 'b' in 'abc' }} {{ 2 not in [1] }} {{ 'k' in {'k': 1} }}", {}],
  ["{{ 'yes' if x else 'no' }} {{ 'v' if y }}|", { x: 0 }],
  ["{{ not x is defined }} {{ x is not none }} {{ y is none }} {{ z is string }} {{ z is iterable }} {{ d is mapping }}", { y: null, z: "s", d: {} }],
  ["{{ 3 is divisibleby 3 }} {{ 4 is odd }} {{ 4 is even }} {{ x is number }} {{ x is integer }} {{ f is float }}", { x: 3, f: 1.5 }],
  ["{{ none }} {{ true }} {{ false }} {{ [1, 'a', none] }} {{ {'a': [1.0]} }} {{ 1e20 }} {{ 0.1 }}", {}],
  ["{{ undefined_var }}|{{ messages[9] }}|{{ d.missing }}", { messages: msgs, d: {} }],
  // subscripts and slices
  ["{{ xs[0] }}{{ xs[-1] }}{{ xs[1:] }}{{ xs[:-1] }}{{ xs[::-1] }}{{ xs[::2] }}{{ 'héllo'[1:3] }}{{ 'abc'[::-1] }}{{ 'abc'[-1] }}", { xs: [1, 2, 3, 4] }],
  ["{{ messages[0]['role'] }} {{ messages[1].content }} {{ messages.0.role }}", { messages: msgs }],
  // filters
  ["{{ '  x  ' | trim }}|{{ 'xxaxx' | trim('x') }}|{{ 'Hi' | upper }}{{ 'Hi' | lower }}|{{ 'hello world' | title }}|{{ 'hELLO' | capitalize }}", {}],
  ["{{ xs | length }} {{ 'héllo' | length }} {{ d | length }} {{ xs | first }} {{ xs | last }} {{ xs | join(', ') }} {{ xs | reverse | list }}", { xs: [3, 1, 2], d: { a: 1 } }],
  ["{{ x | default('d') }} {{ '' | default('d', true) }} {{ none | default('n') }}", {}],
  ["{{ d | tojson }} {{ d | tojson(indent=2) }} {{ 'é\"\\n' | tojson }} {{ [] | tojson }} {{ {} | tojson(indent=4) }}", { d: { b: [1, 2.5, true, null], a: "x" } }],
  ["{{ ms | selectattr('role', 'equalto', 'user') | list | length }} {{ ms | rejectattr('role', 'equalto', 'user') | map(attribute='role') | join(',') }}", { ms: msgs }],
  ["{{ xs | sort | list }} {{ xs | sort(reverse=true) | list }} {{ xs | unique | list }} {{ xs | sum }} {{ xs | min }} {{ xs | max }}", { xs: [3, 1, 2, 3] }],
  ["{{ 'a-b-c' | replace('-', '+') }} {{ '5' | int + 1 }} {{ 'x' | int }} {{ 3 | float }} {{ -3 | abs }} {{ 2.567 | round(2) }} {{ 1 | string }}", {}],
  ["{{ d | items | list }} {{ d | dictsort }}", { d: { b: 1, a: 2 } }],
  ["{{ 'a\nb\n\nc' | indent(2) }}|{{ 'a\nb' | indent(2, true) }}", {}],
  // string and dict methods
  ["{{ s.strip() }}|{{ s.lstrip() }}|{{ s.rstrip() }}|{{ '\n\nx\n'.strip('\n') }}|{{ s.split() }}|{{ 'a,b,,c'.split(',') }}|{{ 'a b c'.split(' ', 1) }}", { s: "  a b  " }],
  ["{{ c.split('</think>')[0].rstrip('\n').split('<think>')[-1].lstrip('\n') }}|{{ c.split('</think>')[-1].lstrip('\n') }}", { c: "<think>\nreason\n</think>\n\nanswer" }],
  ["{{ 'abc'.startswith('ab') }} {{ 'abc'.endswith(('x', 'c')) }} {{ 'abc'.upper() }} {{ 'a.b'.replace('.', '') }} {{ 'abca'.find('c') }} {{ 'abca'.count('a') }} {{ '-'.join(['a', 'b']) }}", {}],
  ["{{ d.get('a') }} {{ d.get('z', 0) }} {{ d.get('z') }} {{ d.keys() | list }} {{ d.values() | list }}", { d: { a: 1, b: 2 } }],
  ["{{ range(3) | list }} {{ range(1, 7, 2) | list }} {% for i in range(2) %}{{ i }}{% endfor %}", {}],
  ["{{ ns.a }}{% set ns = namespace({'a': 1}) %}{{ ns.a }}", { ns: { a: 0 } }],
  // errors
  ["{{ raise_exception('boom') }}", {}],
  ["{{ 'a' + 1 }}", {}],
  ["{{ x.y.z }}", {}],
  ["{% for %}", {}],
  ["{{ 1 + }}", {}],
  ["{% if true %}no end", {}],
];

const PY = String.raw`
import json, sys
import jinja2, jinja2.ext
from jinja2.sandbox import ImmutableSandboxedEnvironment
def raise_exception(message):
    raise jinja2.exceptions.TemplateError(message)
def tojson(x, ensure_ascii=False, indent=None, separators=None, sort_keys=False):
    return json.dumps(x, ensure_ascii=ensure_ascii, indent=indent, separators=separators, sort_keys=sort_keys)
env = ImmutableSandboxedEnvironment(trim_blocks=True, lstrip_blocks=True, extensions=[jinja2.ext.loopcontrols])
env.filters["tojson"] = tojson
env.globals["raise_exception"] = raise_exception
out = []
for tmpl, ctx in json.load(sys.stdin):
    rec = {"template": tmpl, "context": ctx}
    try:
        rec["text"] = env.from_string(tmpl).render(**ctx)
    except Exception as e:
        rec["error"] = True
    out.append(rec)
print("\n".join(json.dumps(r, ensure_ascii=False) for r in out))
`;
const res = execSync('python3 -c "$PY"', { input: JSON.stringify(CASES), env: { ...process.env, PY }, shell: "/bin/bash" });
fs.writeFileSync(out, res.toString());
console.log(`${CASES.length} cases -> ${out}`);
