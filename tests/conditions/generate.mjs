// Rebuilds tests/conditions/cases.json: every (condition, event) pair below evaluated
// as real JavaScript by the engine running this script.
//
//   node tests/conditions/generate.mjs > tests/conditions/cases.json
//
// The condition language (SPEC §7) is a subset of JavaScript expressions. This script
// parses it with its own small parser and emits the JavaScript it stands for, so the
// operators, coercions and truthiness are the engine's own. The only helpers are where
// the language defines what JavaScript would throw on: a path reads own fields of plain
// objects (and `length` of strings and arrays), anything else is `undefined` (as `?.`
// reads); a method on a value without it is `undefined`; `x in [..]` is strict
// membership; `exists(p)` is `p !== undefined`.

function $get1(v, k) {
  if (v !== null && typeof v === "object" && !Array.isArray(v)) {
    return Object.prototype.hasOwnProperty.call(v, k) ? v[k] : undefined;
  }
  if ((typeof v === "string" || Array.isArray(v)) && k === "length") return v.length;
  return undefined;
}
function $get(v, path) {
  for (const k of path) v = $get1(v, k);
  return v;
}
function $call(v, m, a) {
  if (m === "contains") m = "includes";
  if (typeof v === "string") return v[m](a);
  if (Array.isArray(v) && m === "includes") return v.includes(a);
  return undefined;
}

// ---- a tiny Pratt parser for the language, emitting JavaScript source ----
function lex(src) {
  const toks = [];
  const re = /\s*(?:(===|!==|==|!=|<=|>=|&&|\|\||[<>!()[\],.\-])|("(?:[^"\\]|\\.)*"|'(?:[^'\\]|\\.)*')|(\d+(?:\.\d*)?(?:[eE][+-]?\d+)?|\.\d+(?:[eE][+-]?\d+)?)|([A-Za-z_$][A-Za-z0-9_$]*))/y;
  let m;
  while (re.lastIndex < src.length && (m = re.exec(src))) {
    if (m[1]) toks.push({ op: m[1] });
    else if (m[2]) toks.push({ str: m[2] });
    else if (m[3]) toks.push({ num: m[3] });
    else if (m[4]) toks.push({ id: m[4] });
  }
  if (src.slice(re.lastIndex).trim() !== "") throw new Error("lex: " + src);
  toks.push({ end: true });
  return toks;
}
const LITS = new Set(["true", "false", "null", "undefined", "NaN", "Infinity"]);
function compile(src) {
  const t = lex(src);
  let i = 0;
  const peek = () => t[i];
  const next = () => t[i++];
  const isOp = (o) => peek().op === o;
  const expect = (o) => { if (next().op !== o) throw new Error("expected " + o + " in " + src); };
  function literal() {
    const k = next();
    if (k.str) return k.str;
    if (k.num) return k.num;
    if (k.op === "-") { const n = next(); return "(-" + (n.num || n.id) + ")"; }
    if (k.id && LITS.has(k.id)) return k.id;
    throw new Error("literal expected in " + src);
  }
  const bp = (k) => k.op === "||" ? 1 : k.op === "&&" ? 2
    : ["==", "!=", "===", "!=="].includes(k.op) ? 3
    : ["<", "<=", ">", ">="].includes(k.op) || k.id === "in" ? 4 : 0;
  function postfix(base) {
    // base: {path:[...]} | {js:"..."}
    while (isOp(".")) {
      next();
      const name = next().id;
      if (isOp("(")) {
        next();
        const a = literal();
        expect(")");
        base = { js: `$call(${js(base)}, ${JSON.stringify(name)}, ${a})` };
      } else if (base.path) base = { path: [...base.path, name] };
      else base = { js: `$get1(${js(base)}, ${JSON.stringify(name)})` };
    }
    return base;
  }
  const js = (b) => b.path ? `$get(ev, ${JSON.stringify(b.path)})` : b.js;
  function prefix() {
    const k = next();
    if (k.op === "!") return { js: `(!${js(expr(5))})` };
    if (k.op === "(") { const e = expr(0); expect(")"); return postfix(e); }
    if (k.op === "-") { i--; return { js: literal() }; }
    if (k.str) return postfix({ js: k.str });
    if (k.num) return postfix({ js: "(" + k.num + ")" });
    if (k.id && LITS.has(k.id)) return postfix({ js: k.id });
    if (k.id === "exists" && isOp("(")) {
      next();
      const p = expr(0);
      expect(")");
      return postfix({ js: `(${js(p)} !== undefined)` });
    }
    if (k.id) return postfix({ path: [k.id] });
    throw new Error("expression expected in " + src);
  }
  function expr(min) {
    let lhs = prefix();
    for (;;) {
      const k = peek();
      const b = bp(k);
      if (!b || b < min) break;
      next();
      if (k.id === "in") {
        expect("[");
        const items = [];
        if (!isOp("]")) for (;;) { items.push(literal()); if (isOp(",")) { next(); continue; } break; }
        expect("]");
        lhs = { js: `[${items.join(", ")}].some(($v) => $v === ${js(lhs)})` };
      } else {
        const rhs = expr(b + 1);
        lhs = { js: `(${js(lhs)} ${k.op} ${js(rhs)})` };
      }
    }
    return lhs;
  }
  const e = expr(0);
  if (!peek().end) throw new Error("trailing tokens in " + src);
  return new Function("ev", "$get", "$get1", "$call", "return " + js(e) + ";");
}

function describe(v) {
  if (v === undefined) return { type: "undefined" };
  if (v === null) return { type: "null" };
  if (Array.isArray(v)) return { type: "array" };
  switch (typeof v) {
    case "boolean": return { type: "boolean", value: String(v) };
    case "number": return { type: "number", value: String(v) };
    case "string": return { type: "string", value: v };
    default: return { type: "object" };
  }
}

// ---- the events: JSON text exactly as stored (escapes, duplicates and all) ----
const EVENTS = [
  String.raw`{"seq":1,"id":"e1","timestamp":1700000000000,"type":"TASK_FAIL","sessionId":"s1","agentId":"planner-1","data":{"status":"error","retries":3,"msg":"request timeout after 30s","code":"10","tags":["a","b"],"empty":[],"zero":0,"nul":null,"t":true,"nested":{"deep":{"x":1}}}}`,
  String.raw`{"seq":2,"id":"e2","timestamp":1700000000100,"type":"TASK_START","sessionId":"s1","agentId":"coder","data":{"status":"ok","retries":0,"msg":"","code":9,"tags":[],"score":"9","f":1.5}}`,
  String.raw`{"seq":3,"type":"MESSAGE_SEND","sessionId":"s2","agentId":"planner","data":{"msg":"héllo wörld 😀","emoji":"😀","pua":"\uE000","esc":"tab\there \"q\" \u00e9","status":"ERROR","e9":"\u00e9"}}`,
  String.raw`{"seq":4,"type":"X","sessionId":"s"}`,
  String.raw`{"seq":5,"type":"PERFORMANCE_METRIC","sessionId":"s","data":{"latency":12.5,"big":1e21,"neg":-0,"small":1e-7,"str":" 42 ","hex":"0x1F","inf":"Infinity","bad":"12px","arr1":[5],"arr2":[1,2],"obj":{},"nested":[[1,2],[3]],"exp":"1e3","dot":".5"}}`,
  String.raw`{"seq":6,"type":"A","type":"B","sessionId":"s","data":{"k":1,"k":2}}`,
  String.raw`{"seq":7,"type":"STATE_CHANGE","sessionId":"s","data":"not an object","agentId":null,"metadata":{"length":3}}`,
  String.raw`{"seq":8,"type":"T","sessionId":"s","d\u0061ta":{"status":"error","retries":5,"msg":"x\u0041y"}}`,
];

// ---- conditions evaluated on every event ----
const CROSS = [
  String.raw`data.status === "error" && data.retries > 2`,
  String.raw`data.status == "error"`,
  String.raw`data.status !== "error"`,
  String.raw`type === "TASK_FAIL" || type === "TASK_START"`,
  String.raw`type in ["TASK_FAIL", "X", "B"]`,
  String.raw`agentId.startsWith("planner")`,
  String.raw`agentId.endsWith("1")`,
  String.raw`data.msg.includes("timeout")`,
  String.raw`data.msg.contains("o")`,
  String.raw`data.msg.length`,
  String.raw`data.msg.length > 10`,
  String.raw`data.tags.length`,
  String.raw`data.tags.includes("a")`,
  String.raw`exists(data.error)`,
  String.raw`exists(data.nul)`,
  String.raw`exists(data)`,
  String.raw`!exists(agentId)`,
  String.raw`data.x.y`,
  String.raw`data.x.y === undefined`,
  String.raw`data.nested.deep.x == 1`,
  String.raw`data.retries >= 3`,
  String.raw`data.retries < "4"`,
  String.raw`data.code == 10`,
  String.raw`data.code === "10"`,
  String.raw`data.code < "9"`,
  String.raw`data.code < 9`,
  String.raw`data.zero == false`,
  String.raw`data.empty == false`,
  String.raw`data.empty == ""`,
  String.raw`data.tags == "a,b"`,
  String.raw`data.nul == undefined`,
  String.raw`data.nul === undefined`,
  String.raw`data.nul >= 0`,
  String.raw`data.missing >= 0`,
  String.raw`data.missing == null`,
  String.raw`data.t == 1`,
  String.raw`data.t === 1`,
  String.raw`data || "none"`,
  String.raw`data.status || data.msg`,
  String.raw`data.msg && data.status`,
  String.raw`!data`,
  String.raw`!!data.msg`,
  String.raw`data.score > 10`,
  String.raw`data.f`,
  String.raw`data.latency > 10 && data.latency < 20`,
  String.raw`data.str == 42`,
  String.raw`data.hex == 31`,
  String.raw`data.inf > 1e308`,
  String.raw`data.bad > 5`,
  String.raw`data.bad < 5`,
  String.raw`data.arr1 == 5`,
  String.raw`data.arr2 == "1,2"`,
  String.raw`data.obj == "[object Object]"`,
  String.raw`data.nested == "1,2,3"`,
  String.raw`data.exp == 1000`,
  String.raw`data.dot == 0.5`,
  String.raw`data.big == 1e21`,
  String.raw`data.small < 0.000001`,
  String.raw`data.neg === 0`,
  String.raw`data.k`,
  String.raw`type`,
  String.raw`type.length`,
  String.raw`metadata.length`,
  String.raw`data.length`,
  String.raw`data.e9 === "é"`,
  String.raw`data.esc.includes("\"q\"")`,
  String.raw`data.esc.startsWith("tab\t")`,
  String.raw`data.msg.endsWith("😀")`,
  String.raw`data.emoji.length`,
  String.raw`data.emoji > data.pua`,
  String.raw`data.pua > "z"`,
  String.raw`seq > 4 && seq <= 7`,
  String.raw`seq in [1, 3, 5]`,
  String.raw`timestamp > 1700000000050`,
  String.raw`(type === "A" || type === "B") && data.k === 2`,
  String.raw`data.status.includes("err") || data.status.includes("ERR")`,
  String.raw`data.retries != 0`,
];

// ---- single awkward conditions, evaluated on the first event only ----
const ALONE = [
  String.raw`"10" < "9"`, String.raw`"10" < 9`, String.raw`10 < "9"`, String.raw`"a" < "b"`, String.raw`"B" < "a"`, String.raw`"abc" < "abd"`,
  String.raw`"" < "a"`, String.raw`null >= 0`, String.raw`null > 0`, String.raw`null == 0`, String.raw`null <= 0`, String.raw`undefined == null`,
  String.raw`undefined === null`, String.raw`undefined >= 0`, String.raw`undefined == 0`, String.raw`"1" == 1`, String.raw`"1" === 1`,
  String.raw`"1.0" == 1`, String.raw`" 1 " == 1`, String.raw`"" == 0`, String.raw`"0" == false`, String.raw`"false" == false`, String.raw`true == 1`,
  String.raw`true == "1"`, String.raw`true > false`, String.raw`NaN == NaN`, String.raw`NaN === NaN`, String.raw`NaN != NaN`, String.raw`NaN < 1`,
  String.raw`NaN >= NaN`, String.raw`"abc" < 1`, String.raw`"abc" >= 1`, String.raw`Infinity > 1e308`, String.raw`-Infinity < -1e308`,
  String.raw`-1 < 0`, String.raw`-0 === 0`, String.raw`0.1 == 0.10`, String.raw`1e3 == 1000`, String.raw`"1e3" == 1000`, String.raw`"0x10" == 16`,
  String.raw`"0b11" == 3`, String.raw`"0o7" == 7`, String.raw`"-0x10" == -16`, String.raw`"Infinity" == Infinity`, String.raw`"infinity" == Infinity`,
  String.raw`".5" == 0.5`, String.raw`"5." == 5`, String.raw`"+5" == 5`, String.raw`"1_000" == 1000`, String.raw`"\u00e9" === "é"`,
  String.raw`"é" > "e"`, String.raw`"😀" > "\uffff"`, String.raw`"😀".length`, String.raw`"héllo".length`, String.raw`"abc".includes("")`,
  String.raw`"abc".startsWith("ab")`, String.raw`"abc".endsWith("bc")`, String.raw`"a1".includes(1)`, String.raw`"true".includes(true)`,
  String.raw`"null".startsWith(null)`, String.raw`"x".includes(undefined)`, String.raw`"1e+21".includes(1e21)`,
  String.raw`"x" || "y"`, String.raw`"" || "y"`, String.raw`0 || null`, String.raw`"x" && 0`, String.raw`!""`, String.raw`!"0"`, String.raw`!0`, String.raw`!NaN`, String.raw`!null`,
  String.raw`!undefined`, String.raw`true && "ok"`, String.raw`false || false`, String.raw`1 in [1, 2]`, String.raw`"1" in [1, 2]`, String.raw`NaN in [NaN]`,
  String.raw`null in [undefined]`, String.raw`undefined in [undefined]`, String.raw`0 in [-0]`, String.raw`"a" in []`, String.raw`1.5 === 1.5`,
  String.raw`0.1`, String.raw`123456789012345680000`, String.raw`0.000001`, String.raw`1e-7`, String.raw`1.5e300`,
  String.raw`2 > 1 == true`, String.raw`1 < 2 < 3`, String.raw`3 > 2 > 1`, String.raw`"b" > "a" === true`, String.raw`!1 == false`,
  String.raw`(1 || 0) && "z"`, String.raw`"10".length > 1`, String.raw`(data.msg || "").length`, String.raw`(type).length`,
  String.raw`true`, String.raw`false`, String.raw`null`, String.raw`undefined`, String.raw`'single' === "single"`, String.raw`'it\'s' === "it's"`,
  String.raw`"\u0041" === "A"`,
];

const rows = [];
for (const cond of CROSS) {
  const f = compile(cond);
  for (const ev of EVENTS) {
    const v = f(JSON.parse(ev), $get, $get1, $call);
    rows.push({ condition: cond, event: ev, truthy: !!v, ...describe(v) });
  }
}
for (const cond of ALONE) {
  const f = compile(cond);
  const ev = EVENTS[0];
  const v = f(JSON.parse(ev), $get, $get1, $call);
  rows.push({ condition: cond, event: ev, truthy: !!v, ...describe(v) });
}

process.stdout.write(
  JSON.stringify(
    {
      generator: "tests/conditions/generate.mjs",
      engine: `node ${process.version}`,
      count: rows.length,
      cases: rows,
    },
    null,
    1,
  ) + "\n",
);
