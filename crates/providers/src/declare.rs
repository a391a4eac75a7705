//! An agent's tools declared to a provider: names mapped ([`crate::names`]), schemas
//! adapted ([`crate::schema`]), and the whole within the provider's limits
//! ([`crate::Rules`]): a schema too big is declared again with less detail, and what still
//! does not fit (too many tools, too many bytes) is left out with the reason, never
//! silently.

use serde_json::{Value, json};

use crate::Provider;
use crate::names::NameMap;
use crate::schema::{self, Adapted, Options, cut};

/// One tool as the registry describes it.
#[derive(Debug, Clone, Copy)]
pub struct ToolSpec<'a> {
    pub name: &'a str,
    pub description: &'a str,
    pub input_schema: &'a Value,
}

/// One tool as the model receives it.
#[derive(Debug, Clone)]
pub struct Declared {
    /// The tool's own name (`github.create_issue`).
    pub tool: String,
    /// The name the model calls it by.
    pub name: String,
    pub description: String,
    pub adapted: Adapted,
}

/// A tool that could not be declared, and why.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LeftOut {
    pub tool: String,
    pub reason: String,
}

/// What one request declares.
#[derive(Debug, Clone)]
pub struct Declarations {
    pub provider: Provider,
    pub tools: Vec<Declared>,
    pub left_out: Vec<LeftOut>,
    names: NameMap,
}

/// The longest tool description sent, in characters.
const DESCRIPTION_MAX: usize = 1024;

/// Ever plainer forms a schema too big is declared in.
const SHRINK: [Options; 3] = [
    Options {
        max_depth: 12,
        nested_descriptions: true,
        description_max: 1024,
    },
    Options {
        max_depth: 6,
        nested_descriptions: false,
        description_max: 300,
    },
    Options {
        max_depth: 3,
        nested_descriptions: false,
        description_max: 120,
    },
];

/// `specs` declared to `provider`, in their order.
pub fn declare(provider: Provider, specs: &[ToolSpec<'_>]) -> Declarations {
    let rules = provider.rules();
    let names = NameMap::build(provider, specs.iter().map(|s| s.name));
    let mut tools = Vec::new();
    let mut left_out = Vec::new();
    let mut total = 0usize;
    let mut seen = std::collections::HashSet::new();
    for spec in specs {
        if !seen.insert(spec.name) {
            continue;
        }
        let Some(name) = names.declared(spec.name) else {
            continue;
        };
        if tools.len() >= rules.max_tools {
            left_out.push(LeftOut {
                tool: spec.name.to_owned(),
                reason: format!(
                    "{provider} takes at most {} tools in one request: the first {} are declared",
                    rules.max_tools, rules.max_tools
                ),
            });
            continue;
        }
        let description = cut(spec.description.trim(), DESCRIPTION_MAX);
        let mut fitted = None;
        for (level, opts) in SHRINK.iter().enumerate() {
            let adapted = schema::adapt(provider, spec.input_schema, *opts);
            let d = Declared {
                tool: spec.name.to_owned(),
                name: name.to_owned(),
                description: description.clone(),
                adapted,
            };
            let size = wire_one(provider, &d).to_string().len();
            if size <= rules.max_tool_bytes {
                let mut d = d;
                if level > 0 {
                    d.adapted
                        .notes
                        .push("the schema was declared with less detail to stay within the size bound".into());
                }
                fitted = Some((d, size));
                break;
            }
        }
        let Some((d, size)) = fitted else {
            left_out.push(LeftOut {
                tool: spec.name.to_owned(),
                reason: format!(
                    "its input schema is larger than {} KB even with less detail",
                    rules.max_tool_bytes / 1024
                ),
            });
            continue;
        };
        if total + size > rules.max_total_bytes {
            left_out.push(LeftOut {
                tool: spec.name.to_owned(),
                reason: format!(
                    "the declarations before it already take most of the {} KB a request may spend on tools",
                    rules.max_total_bytes / 1024
                ),
            });
            continue;
        }
        total += size;
        tools.push(d);
    }
    Declarations {
        provider,
        tools,
        left_out,
        names,
    }
}

impl Declarations {
    /// The provider's `tools` field.
    pub fn wire(&self) -> Value {
        match self.provider {
            Provider::Gemini if self.tools.is_empty() => json!([]),
            Provider::Gemini => json!([{
                "functionDeclarations": self.tools.iter().map(|d| wire_one(self.provider, d)).collect::<Vec<_>>()
            }]),
            _ => Value::Array(self.tools.iter().map(|d| wire_one(self.provider, d)).collect()),
        }
    }

    /// The declared tool a model's call names.
    pub fn by_name(&self, declared: &str) -> Option<&Declared> {
        let tool = self.names.tool(declared)?;
        self.tools.iter().find(|d| d.tool == tool)
    }
}

/// One tool in the provider's form.
fn wire_one(provider: Provider, d: &Declared) -> Value {
    let mut out = serde_json::Map::new();
    out.insert("name".into(), json!(d.name));
    if !d.description.is_empty() {
        out.insert("description".into(), json!(d.description));
    }
    match provider {
        Provider::OpenAi => {
            if let Some(s) = &d.adapted.schema {
                out.insert("parameters".into(), s.clone());
            }
            json!({"type": "function", "function": out})
        }
        Provider::Anthropic => {
            let s = d
                .adapted
                .schema
                .clone()
                .unwrap_or_else(|| json!({"type": "object", "properties": {}}));
            out.insert("input_schema".into(), s);
            Value::Object(out)
        }
        Provider::Gemini => {
            if let Some(s) = &d.adapted.schema {
                out.insert("parameters".into(), s.clone());
            }
            Value::Object(out)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::check;

    fn specs(n: usize, schema: &Value) -> Vec<(String, String)> {
        let _ = schema;
        (0..n)
            .map(|i| (format!("api.operation_number_{i}"), format!("Operation {i}")))
            .collect()
    }

    #[test]
    fn every_provider_gets_its_form_and_calls_map_back() {
        let schema = json!({"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]});
        let empty = json!({"type": "object", "properties": {}});
        let list = [
            ToolSpec {
                name: "weather.get-forecast",
                description: "Forecast",
                input_schema: &schema,
            },
            ToolSpec {
                name: "web_search",
                description: "",
                input_schema: &empty,
            },
        ];
        for p in Provider::ALL {
            let d = declare(p, &list);
            assert!(d.left_out.is_empty());
            let wire = d.wire();
            let decls: Vec<Value> = match p {
                Provider::OpenAi => wire
                    .as_array()
                    .cloned()
                    .unwrap_or_default()
                    .into_iter()
                    .map(|t| t["function"].clone())
                    .collect(),
                Provider::Anthropic => wire.as_array().cloned().unwrap_or_default(),
                Provider::Gemini => wire[0]["functionDeclarations"].as_array().cloned().unwrap_or_default(),
            };
            assert_eq!(decls.len(), 2, "{p}: {wire}");
            for decl in &decls {
                let name = decl["name"].as_str().unwrap_or_default();
                let schema = match p {
                    Provider::Anthropic => decl.get("input_schema"),
                    _ => decl.get("parameters"),
                };
                check::declaration(p, name, schema).unwrap_or_else(|e| panic!("{p}: {e}"));
                assert!(d.by_name(name).is_some(), "{p}: {name}");
            }
            assert_eq!(
                d.by_name(&d.tools[0].name).map(|t| t.tool.as_str()),
                Some("weather.get-forecast")
            );
        }
        let g = declare(Provider::Gemini, &list).wire();
        assert!(
            g[0]["functionDeclarations"][1].get("parameters").is_none(),
            "no parameters for Gemini: {g}"
        );
        let o = declare(Provider::OpenAi, &list).wire();
        assert_eq!(o[0]["function"]["name"], "weather__get-forecast");
    }

    #[test]
    fn hundreds_of_tools_stay_within_the_limits_and_say_what_was_left_out() {
        let schema = json!({"type": "object", "properties": {"q": {"type": "string", "description": "x".repeat(900)}}});
        let names = specs(300, &schema);
        let list: Vec<ToolSpec> = names
            .iter()
            .map(|(n, d)| ToolSpec {
                name: n,
                description: d,
                input_schema: &schema,
            })
            .collect();
        for p in Provider::ALL {
            let d = declare(p, &list);
            let rules = p.rules();
            assert!(d.tools.len() <= rules.max_tools);
            assert_eq!(d.tools.len() + d.left_out.len(), 300);
            assert!(d.wire().to_string().len() <= rules.max_total_bytes + 64, "{p}");
            assert!(d.left_out.iter().all(|l| !l.reason.is_empty()));
            assert_eq!(d.tools[0].tool, "api.operation_number_0", "the first ones are kept");
        }
    }

    #[test]
    fn a_huge_schema_is_declared_plainer_or_left_out() {
        let mut props = serde_json::Map::new();
        for i in 0..400 {
            props.insert(
                format!("field_{i}"),
                json!({"type": "object", "description": "d".repeat(200), "properties": {"inner": {"type": "string", "description": "e".repeat(200)}}}),
            );
        }
        let big = json!({"type": "object", "properties": props});
        let list = [ToolSpec {
            name: "big.op",
            description: "Big",
            input_schema: &big,
        }];
        for p in Provider::ALL {
            let d = declare(p, &list);
            if let Some(t) = d.tools.first() {
                assert!(t.adapted.notes.iter().any(|n| n.contains("less detail")), "{p}");
                assert!(d.wire().to_string().len() <= p.rules().max_tool_bytes + 64);
            } else {
                assert!(d.left_out[0].reason.contains("larger than"), "{p}");
            }
        }
    }
}
