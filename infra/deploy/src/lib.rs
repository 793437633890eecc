//! `infra/template.yaml` as data, for the checks that tie the deployment to the code: the table
//! against `store::table`, every route against its function's router, each role against the
//! calls its function makes, the environment against `runtime::Config`.
//!
//! CloudFormation's short-form tags (`!Ref`, `!GetAtt`, `!Sub`, ...) are read as tagged YAML
//! values and turned into their long forms (`{"Ref": ..}`, `{"Fn::GetAtt": [..]}`), so the rest
//! works on plain JSON.

use serde_json::{Map, Value, json};

/// The template, as committed.
pub const TEMPLATE: &str = include_str!("../../template.yaml");

/// The template parsed into JSON, intrinsic functions in their long forms.
pub fn template() -> Value {
    parse(TEMPLATE).expect("infra/template.yaml is valid YAML")
}

/// Parses a CloudFormation template in YAML.
pub fn parse(text: &str) -> Result<Value, serde_norway::Error> {
    let yaml: serde_norway::Value = serde_norway::from_str(text)?;
    Ok(to_json(yaml))
}

fn to_json(yaml: serde_norway::Value) -> Value {
    use serde_norway::Value as Y;
    match yaml {
        Y::Null => Value::Null,
        Y::Bool(b) => Value::Bool(b),
        Y::Number(n) => {
            if let Some(i) = n.as_i64() {
                json!(i)
            } else if let Some(u) = n.as_u64() {
                json!(u)
            } else {
                json!(n.as_f64())
            }
        }
        Y::String(s) => Value::String(s),
        Y::Sequence(items) => Value::Array(items.into_iter().map(to_json).collect()),
        Y::Mapping(map) => {
            let mut out = Map::new();
            for (key, value) in map {
                let key = match to_json(key) {
                    Value::String(s) => s,
                    other => other.to_string(),
                };
                out.insert(key, to_json(value));
            }
            Value::Object(out)
        }
        Y::Tagged(tagged) => {
            let tag = tagged.tag.to_string();
            let name = tag.trim_start_matches('!');
            let value = to_json(tagged.value);
            match name {
                "Ref" | "Condition" => json!({ name: value }),
                // `!GetAtt Resource.Attribute` is `Fn::GetAtt: [Resource, Attribute]`.
                "GetAtt" => match value {
                    Value::String(s) => {
                        let (resource, attribute) = s.split_once('.').unwrap_or((&s, ""));
                        json!({"Fn::GetAtt": [resource, attribute]})
                    }
                    other => json!({ "Fn::GetAtt": other }),
                },
                other => json!({ format!("Fn::{other}"): value }),
            }
        }
    }
}

/// A resource's properties (Null when it has none).
pub fn properties<'a>(template: &'a Value, logical_id: &str) -> &'a Value {
    &template["Resources"][logical_id]["Properties"]
}

/// The logical ids of the resources of this type, in template order.
pub fn resources_of_type<'a>(template: &'a Value, kind: &str) -> Vec<&'a str> {
    template["Resources"]
        .as_object()
        .map(|resources| {
            resources
                .iter()
                .filter(|(_, r)| r["Type"] == kind)
                .map(|(id, _)| id.as_str())
                .collect()
        })
        .unwrap_or_default()
}

/// One of the template's functions.
#[derive(Debug, Clone, PartialEq)]
pub struct Function {
    /// Its logical id, e.g. `PayNowFunction`.
    pub logical_id: String,
    /// The Cargo binary its zip holds (from CodeUri `../target/lambda/<binary>/bootstrap.zip`).
    pub binary: String,
    pub memory_mb: u64,
    pub timeout_s: u64,
    /// The logical id of its role.
    pub role: String,
    pub log_group: String,
}

/// Every `AWS::Serverless::Function`, in template order.
pub fn functions(template: &Value) -> Vec<Function> {
    resources_of_type(template, "AWS::Serverless::Function")
        .into_iter()
        .map(|id| {
            let p = properties(template, id);
            let code = p["CodeUri"].as_str().unwrap_or_default();
            let binary = code
                .strip_prefix("../target/lambda/")
                .and_then(|rest| rest.strip_suffix("/bootstrap.zip"))
                .unwrap_or_default()
                .to_owned();
            let get_att = |v: &Value| v["Fn::GetAtt"][0].as_str().unwrap_or_default().to_owned();
            Function {
                logical_id: id.to_owned(),
                binary,
                memory_mb: p["MemorySize"].as_u64().unwrap_or_default(),
                timeout_s: p["Timeout"].as_u64().unwrap_or_default(),
                role: get_att(&p["Role"]),
                log_group: p["LoggingConfig"]["LogGroup"]["Ref"]
                    .as_str()
                    .unwrap_or_default()
                    .to_owned(),
            }
        })
        .collect()
}

/// An HTTP API route and the function it invokes.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct Route {
    pub method: String,
    pub path: String,
    /// The Cargo binary of the function.
    pub function: String,
}

impl Route {
    /// API Gateway's route key, e.g. `GET /pay/{org}/{invoice}`.
    pub fn key(&self) -> String {
        format!("{} {}", self.method, self.path)
    }
}

/// Every route of every function (its `HttpApi` events).
pub fn routes(template: &Value) -> Vec<Route> {
    let mut routes = Vec::new();
    for function in functions(template) {
        let events = &properties(template, &function.logical_id)["Events"];
        for event in events.as_object().into_iter().flat_map(|e| e.values()) {
            if event["Type"] != "HttpApi" {
                continue;
            }
            routes.push(Route {
                method: event["Properties"]["Method"]
                    .as_str()
                    .unwrap_or_default()
                    .to_uppercase(),
                path: event["Properties"]["Path"]
                    .as_str()
                    .unwrap_or_default()
                    .to_owned(),
                function: function.binary.clone(),
            });
        }
    }
    routes
}

/// One Allow statement of a role, its resources named as the template names them: `Table`
/// for `!GetAtt Table.Arn`, `${Table.Arn}/index/gsi1` for a `!Sub`, the literal otherwise.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Statement {
    pub actions: Vec<String>,
    pub resources: Vec<String>,
    pub condition: Value,
}

fn one_or_many(value: &Value) -> Vec<&Value> {
    match value {
        Value::Array(items) => items.iter().collect(),
        Value::Null => Vec::new(),
        other => vec![other],
    }
}

/// How a resource is named in a statement (see `Statement`).
pub fn resource_name(value: &Value) -> String {
    if let Some(att) = value.get("Fn::GetAtt") {
        return att[0].as_str().unwrap_or_default().to_owned();
    }
    if let Some(sub) = value.get("Fn::Sub") {
        return match sub {
            Value::String(s) => s.clone(),
            Value::Array(parts) => parts[0].as_str().unwrap_or_default().to_owned(),
            other => other.to_string(),
        };
    }
    if let Some(r) = value.get("Ref") {
        return r.as_str().unwrap_or_default().to_owned();
    }
    value
        .as_str()
        .map_or_else(|| value.to_string(), str::to_owned)
}

/// Every Allow statement of an `AWS::IAM::Role`'s inline policies and of the
/// `AWS::IAM::Policy` resources attached to it (`Roles: [!Ref <role>]`).
pub fn role_statements(template: &Value, role: &str) -> Vec<Statement> {
    let mut documents: Vec<&Value> = one_or_many(&properties(template, role)["Policies"])
        .into_iter()
        .map(|policy| &policy["PolicyDocument"])
        .collect();
    for id in resources_of_type(template, "AWS::IAM::Policy") {
        let policy = properties(template, id);
        if one_or_many(&policy["Roles"])
            .iter()
            .any(|r| r["Ref"] == role)
        {
            documents.push(&policy["PolicyDocument"]);
        }
    }
    let mut out = Vec::new();
    for document in documents {
        for statement in one_or_many(&document["Statement"]) {
            if statement["Effect"] != "Allow" {
                continue;
            }
            out.push(Statement {
                actions: one_or_many(&statement["Action"])
                    .into_iter()
                    .filter_map(|a| a.as_str().map(str::to_owned))
                    .collect(),
                resources: one_or_many(&statement["Resource"])
                    .into_iter()
                    .map(resource_name)
                    .collect(),
                condition: statement["Condition"].clone(),
            });
        }
    }
    out
}

/// Whether a role allows `action` on `resource` (names as in `Statement`).
pub fn allows(statements: &[Statement], action: &str, resource: &str) -> bool {
    statements
        .iter()
        .any(|s| s.actions.iter().any(|a| a == action) && s.resources.iter().any(|r| r == resource))
}

/// The properties of `AWS::DynamoDB::Table` that `store::table::cloudformation_properties()`
/// defines, compared: every difference in words (none when they match). Lists whose order
/// does not matter (attribute definitions, indexes) are compared by name.
pub fn table_differences(template_table: &Value, store_definition: &Value) -> Vec<String> {
    let mut differences = Vec::new();
    let Some(wanted) = store_definition.as_object() else {
        return vec!["the store's definition is not an object".into()];
    };
    for (name, value) in wanted {
        let found = &template_table[name];
        let (found, value) = match name.as_str() {
            "AttributeDefinitions" => (
                sorted(found, "AttributeName"),
                sorted(value, "AttributeName"),
            ),
            "GlobalSecondaryIndexes" => (sorted(found, "IndexName"), sorted(value, "IndexName")),
            _ => (found.clone(), value.clone()),
        };
        if found != value {
            differences.push(format!(
                "{name}: the template has {found}, the store defines {value}"
            ));
        }
    }
    differences
}

fn sorted(list: &Value, by: &str) -> Value {
    let mut items: Vec<Value> = list.as_array().cloned().unwrap_or_default();
    items.sort_by(|a, b| a[by].as_str().cmp(&b[by].as_str()));
    if list.is_array() {
        Value::Array(items)
    } else {
        list.clone()
    }
}

/// Fills a route's `{param}`s with sample values, as a client would call it.
pub fn sample_path(path: &str) -> String {
    path.split('/')
        .map(|segment| match segment {
            "{org}" => "demo",
            "{invoice}" => "INV-1",
            "{payment}" => "pay_01JD8X3Q9M6V4W2K7T5R1N0P0A",
            "{customer}" => "cust-1",
            "{id}" => "01JD8X3Q9M6V4W2K7T5R1N0P0B",
            "{action}" => "resend",
            "{token}" => "tok0000000000000000000000000000000000000000",
            "{gateway}" => "sandbox",
            "{login}" => "PBa1B2c3D4e5",
            s if s.starts_with('{') => "x",
            s => s,
        })
        .collect::<Vec<_>>()
        .join("/")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn short_form_tags_become_long_forms() {
        let t = parse(
            "A: !Ref X\nB: !GetAtt Table.Arn\nC: !Sub \"${Table.Arn}/index/gsi1\"\nD: !If [c, 1, 2]\nE: [!Select [1, !Split ['@', !Ref S]]]\n",
        )
        .unwrap();
        assert_eq!(t["A"], json!({"Ref": "X"}));
        assert_eq!(t["B"], json!({"Fn::GetAtt": ["Table", "Arn"]}));
        assert_eq!(t["C"], json!({"Fn::Sub": "${Table.Arn}/index/gsi1"}));
        assert_eq!(t["D"], json!({"Fn::If": ["c", 1, 2]}));
        assert_eq!(
            t["E"][0],
            json!({"Fn::Select": [1, {"Fn::Split": ["@", {"Ref": "S"}]}]})
        );
        assert_eq!(resource_name(&t["B"]), "Table");
        assert_eq!(resource_name(&t["C"]), "${Table.Arn}/index/gsi1");
    }

    #[test]
    fn table_differences_name_what_differs_and_ignore_order() {
        let store = json!({
            "BillingMode": "PAY_PER_REQUEST",
            "AttributeDefinitions": [{"AttributeName": "pk", "AttributeType": "S"}, {"AttributeName": "sk", "AttributeType": "S"}],
        });
        let same = json!({
            "BillingMode": "PAY_PER_REQUEST",
            "AttributeDefinitions": [{"AttributeName": "sk", "AttributeType": "S"}, {"AttributeName": "pk", "AttributeType": "S"}],
            "DeletionProtectionEnabled": true,
        });
        assert!(table_differences(&same, &store).is_empty());
        let other = json!({
            "BillingMode": "PROVISIONED",
            "AttributeDefinitions": [{"AttributeName": "pk", "AttributeType": "S"}],
        });
        let found = table_differences(&other, &store);
        assert_eq!(found.len(), 2, "{found:?}");
        assert!(found[0].starts_with("BillingMode") || found[1].starts_with("BillingMode"));
    }

    #[test]
    fn sample_paths_fill_every_parameter() {
        assert_eq!(sample_path("/pay/{org}/{invoice}"), "/pay/demo/INV-1");
        assert!(!sample_path("/admin/{org}/payers/invitations/{id}/{action}").contains('{'));
    }
}
