//! The Prometheus text exposition format (version 0.0.4): families of
//! samples, each with its HELP and TYPE once, label values escaped, names
//! made valid. Pure, so the format is unit-tested apart from the daemon.

use std::collections::BTreeMap;
use std::fmt::Write;

pub type Labels = Vec<(String, String)>;

pub struct Family {
    pub name: String,
    pub help: String,
    /// counter, gauge, histogram or untyped.
    pub kind: &'static str,
    /// (suffix such as "" or "_bucket", labels, value).
    pub samples: Vec<(&'static str, Labels, f64)>,
}

impl Family {
    pub fn new(name: &str, kind: &'static str, help: &str) -> Family {
        Family { name: metric_name(name), help: help.into(), kind, samples: Vec::new() }
    }

    pub fn add(&mut self, labels: Labels, value: f64) {
        self.samples.push(("", labels, value));
    }
}

/// `[a-zA-Z_:][a-zA-Z0-9_:]*`: anything else becomes `_`.
pub fn metric_name(s: &str) -> String {
    let mut out: String = s.chars().map(|c| if c.is_ascii_alphanumeric() || c == '_' || c == ':' { c } else { '_' }).collect();
    if out.is_empty() || out.starts_with(|c: char| c.is_ascii_digit()) {
        out.insert(0, '_');
    }
    out
}

/// Label names are metric names without `:`, and may not start with `__`.
pub fn label_name(s: &str) -> String {
    let out = metric_name(s).replace(':', "_");
    if out.starts_with("__") {
        format!("x{out}")
    } else {
        out
    }
}

fn escape(v: &str) -> String {
    v.replace('\\', r"\\").replace('"', "\\\"").replace('\n', r"\n")
}

fn number(v: f64) -> String {
    if v.is_nan() {
        "NaN".into()
    } else if v.is_infinite() {
        if v > 0.0 { "+Inf" } else { "-Inf" }.into()
    } else {
        format!("{v}")
    }
}

/// All families, merged by name (first HELP and TYPE win), in name order.
pub fn render(families: Vec<Family>) -> String {
    let mut merged: BTreeMap<String, Family> = BTreeMap::new();
    for f in families {
        match merged.get_mut(&f.name) {
            Some(m) => m.samples.extend(f.samples),
            None => {
                merged.insert(f.name.clone(), f);
            }
        }
    }
    let mut out = String::new();
    for f in merged.values() {
        let _ = writeln!(out, "# HELP {} {}", f.name, f.help.replace('\\', r"\\").replace('\n', r"\n"));
        let _ = writeln!(out, "# TYPE {} {}", f.name, f.kind);
        let mut seen = std::collections::HashSet::new();
        for (suffix, labels, value) in &f.samples {
            let labels: Vec<String> = labels.iter().map(|(k, v)| format!("{}=\"{}\"", label_name(k), escape(v))).collect();
            let line = if labels.is_empty() { format!("{}{suffix}", f.name) } else { format!("{}{suffix}{{{}}}", f.name, labels.join(",")) };
            // A module may report the same series twice under names that
            // sanitize alike: keep the first, as a scrape must not repeat one.
            if seen.insert(line.clone()) {
                let _ = writeln!(out, "{line} {}", number(*value));
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_values_and_families_follow_the_format() {
        let mut a = Family::new("module depth.now", "gauge", "a\nhelp");
        a.add(vec![("module".into(), "m\"1\\".into()), ("9bad-label".into(), "x\ny".into())], 2.5);
        let mut b = Family::new("module_depth_now", "gauge", "ignored");
        b.add(vec![("module".into(), "m2".into())], f64::INFINITY);
        b.add(vec![("module".into(), "m2".into())], 7.0);
        let text = render(vec![a, b]);
        assert_eq!(
            text,
            "# HELP module_depth_now a\\nhelp\n# TYPE module_depth_now gauge\n\
             module_depth_now{module=\"m\\\"1\\\\\",_9bad_label=\"x\\ny\"} 2.5\n\
             module_depth_now{module=\"m2\"} +Inf\n"
        );
        assert_eq!(label_name("__reserved"), "x__reserved");
        assert_eq!(metric_name(""), "_");
    }
}
