//! The differential table (SPEC §7): every row of tests/conditions/cases.json was
//! evaluated as real JavaScript by tests/conditions/generate.mjs; the evaluator must
//! agree with each one, on its value's type and value and on its truthiness.

use tracecast::condition::Condition;

#[test]
fn evaluator_agrees_with_javascript_on_every_row() {
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/conditions/cases.json");
    let text = std::fs::read_to_string(path).expect("cases.json");
    let doc: serde_json::Value = serde_json::from_str(&text).expect("cases.json is JSON");
    let cases = doc["cases"].as_array().expect("cases");
    assert!(cases.len() >= 300, "the table holds {} rows", cases.len());
    let mut failures = Vec::new();
    for (i, c) in cases.iter().enumerate() {
        let cond = c["condition"].as_str().expect("condition");
        let event = c["event"].as_str().expect("event");
        let compiled = match Condition::compile(cond) {
            Ok(x) => x,
            Err(e) => {
                failures.push(format!("#{i} {cond}: does not compile: {e}"));
                continue;
            }
        };
        let want = match (c["type"].as_str().expect("type"), c["value"].as_str()) {
            ("undefined" | "null" | "array" | "object", _) => {
                c["type"].as_str().unwrap().to_string()
            }
            ("boolean", Some(v)) => v.to_string(),
            (t, Some(v)) => format!("{t}:{v}"),
            (t, None) => t.to_string(),
        };
        let got = compiled.value_text(event.as_bytes());
        let truthy = compiled.matches(event.as_bytes());
        if got != want || truthy != c["truthy"].as_bool().expect("truthy") {
            failures.push(format!(
                "#{i} {cond} on {event}: JavaScript gives {want} (truthy {}), we give {got} (truthy {truthy})",
                c["truthy"]
            ));
        }
        // The canonical form means the same thing.
        let again = Condition::compile(compiled.canonical()).expect("canonical compiles");
        assert_eq!(again, compiled, "#{i} canonical {}", compiled.canonical());
        assert_eq!(again.canonical(), compiled.canonical());
        assert_eq!(
            again.value_text(event.as_bytes()),
            got,
            "#{i} canonical {}",
            compiled.canonical()
        );
    }
    assert!(
        failures.is_empty(),
        "{} of {} rows disagree:\n{}",
        failures.len(),
        cases.len(),
        failures.join("\n")
    );
}

/// Conditions evaluated one after another on the same event through one shared
/// top-level probe (as the hub's memo does) give each its own verdict, whatever the
/// previous condition read: every row against every row's event, in table order.
#[test]
fn shared_top_level_probes_change_no_verdict() {
    use tracecast::condition::TopProbe;
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/conditions/cases.json");
    let text = std::fs::read_to_string(path).expect("cases.json");
    let doc: serde_json::Value = serde_json::from_str(&text).expect("cases.json is JSON");
    let cases = doc["cases"].as_array().expect("cases");
    let conds: Vec<Condition> = cases
        .iter()
        .filter_map(|c| Condition::compile(c["condition"].as_str()?).ok())
        .collect();
    let mut events: Vec<&str> = cases.iter().filter_map(|c| c["event"].as_str()).collect();
    events.sort_unstable();
    events.dedup();
    events.extend([
        r#"{"data":1,"data":{"status":"error","retries":3}}"#,
        "{\"data\":",
        "[1]",
    ]);
    let mut checked = 0;
    for event in &events {
        let json = event.as_bytes();
        let mut probe = TopProbe::default();
        for (i, c) in conds.iter().enumerate() {
            assert_eq!(
                c.matches_sharing(json, &mut probe),
                c.matches(json),
                "#{i} {} on {event}",
                c.canonical()
            );
            checked += 1;
        }
    }
    assert!(checked > 5_000, "{checked} pairs checked");
}
