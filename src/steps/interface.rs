//! One source of truth per step interface. A kind states its parameters, outputs and pins
//! as typed structs; the [`KindSpec`] table that validation and the reference read is
//! checked against those structs by [`check`] (one test per kind), so the table, the docs
//! and the code cannot disagree. [`outputs`] turns a typed outputs value into the journal's
//! [`Values`]. A parameter an earlier step provides is [`Phase::Later`]: optional while
//! planning (not known yet), required when applying, so one `Params` struct serves both.

use serde::Serialize;
use serde::de::{self, DeserializeOwned, Visitor};

use crate::journal::Values;
use crate::playbook::KindSpec;

use super::StepError;

/// The field names of a struct that derives `Deserialize` (in declaration order; renames
/// applied). Empty for anything that is not a plain struct.
pub fn field_names<T: DeserializeOwned>() -> &'static [&'static str] {
    match T::deserialize(FieldNames) {
        Err(Found(fields)) => fields,
        Ok(_) => &[],
    }
}

/// A kind's typed pins (a struct with one field per pin key) from the journal's values;
/// keys it does not know are ignored.
pub fn read_pins<P: DeserializeOwned>(values: &Values) -> Result<P, serde_json::Error> {
    let map = values
        .iter()
        .map(|(key, value)| (key.clone(), value.clone()))
        .collect();
    serde_json::from_value(serde_json::Value::Object(map))
}

/// A kind's typed outputs as the journal's values (every field, by name).
pub fn outputs<T: Serialize>(value: &T) -> Result<Values, StepError> {
    match serde_json::to_value(value) {
        Ok(serde_json::Value::Object(map)) => Ok(map.into_iter().collect()),
        Ok(other) => Err(StepError::Params(format!(
            "outputs must be a struct, not `{other}`"
        ))),
        Err(error) => Err(StepError::Params(format!("cannot record outputs: {error}"))),
    }
}

/// When parameters are read. A parameter that an earlier step provides (`subnet_ids:
/// ${steps.network.private_subnet_ids}`) is not known yet while planning: the plan sees the
/// known parameters only. Typed `P::Later<T>`, it is `Option<T>` in `Params<Planning>` and
/// `T` in `Params<Applying>` (required, as the table says).
pub trait Phase {
    /// A parameter that may be known only once earlier steps have run.
    type Later<T: DeserializeOwned + std::fmt::Debug>: DeserializeOwned + std::fmt::Debug;
}

/// Reading parameters to plan: [`Phase::Later`] parameters may be missing.
#[derive(Debug)]
pub struct Planning;

/// Reading parameters to apply: every parameter is known.
#[derive(Debug)]
pub struct Applying;

impl Phase for Planning {
    type Later<T: DeserializeOwned + std::fmt::Debug> = Option<T>;
}

impl Phase for Applying {
    type Later<T: DeserializeOwned + std::fmt::Debug> = T;
}

/// `#[serde(default = "interface::yes")]`: a flag that is on unless turned off.
pub fn yes() -> bool {
    true
}

/// Check a kind's table against its typed interface (one unit test per kind calls it):
/// the table's parameters are exactly the fields of `P`, its outputs exactly the fields of
/// `O`, and `sample` (a document giving every parameter) is accepted by `P`, and refused
/// without a parameter exactly when the table marks that parameter required. Panics with
/// the difference.
pub fn check<P: DeserializeOwned, O: DeserializeOwned>(
    spec: &KindSpec,
    sample: &serde_json::Value,
) {
    let mut table: Vec<&str> = spec.parameters.iter().map(|param| param.name).collect();
    let mut fields = field_names::<P>().to_vec();
    table.sort_unstable();
    fields.sort_unstable();
    assert_eq!(
        table, fields,
        "`{}`: the parameter table and the typed parameters differ",
        spec.kind
    );
    let mut outputs_table = spec.outputs.to_vec();
    let mut output_fields = field_names::<O>().to_vec();
    outputs_table.sort_unstable();
    output_fields.sort_unstable();
    assert_eq!(
        outputs_table, output_fields,
        "`{}`: the outputs table and the typed outputs differ",
        spec.kind
    );
    let Some(document) = sample.as_object() else {
        panic!("`{}`: the sample must be a map", spec.kind);
    };
    if let Err(error) = serde_json::from_value::<P>(sample.clone()) {
        panic!("`{}`: the sample is refused: {error}", spec.kind);
    }
    for param in spec.parameters {
        assert!(
            document.contains_key(param.name),
            "`{}`: the sample lacks `{}`",
            spec.kind,
            param.name
        );
        let mut without = document.clone();
        without.remove(param.name);
        let refused = serde_json::from_value::<P>(serde_json::Value::Object(without)).is_err();
        assert_eq!(
            param.required,
            refused,
            "`{}`: parameter `{}` is {} in the table but {} in the typed parameters",
            spec.kind,
            param.name,
            if param.required {
                "required"
            } else {
                "optional"
            },
            if refused { "required" } else { "optional" },
        );
    }
}

#[derive(Debug)]
struct Found(&'static [&'static str]);

impl std::fmt::Display for Found {
    fn fmt(&self, formatter: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        formatter.write_str("fields found")
    }
}

impl std::error::Error for Found {}

impl de::Error for Found {
    fn custom<T: std::fmt::Display>(_message: T) -> Self {
        Self(&[])
    }
}

/// A deserializer that answers nothing and reports the fields a struct asks for.
struct FieldNames;

impl<'de> de::Deserializer<'de> for FieldNames {
    type Error = Found;

    fn deserialize_any<V: Visitor<'de>>(self, _visitor: V) -> Result<V::Value, Found> {
        Err(Found(&[]))
    }

    fn deserialize_struct<V: Visitor<'de>>(
        self,
        _name: &'static str,
        fields: &'static [&'static str],
        _visitor: V,
    ) -> Result<V::Value, Found> {
        Err(Found(fields))
    }

    serde::forward_to_deserialize_any! {
        bool i8 i16 i32 i64 i128 u8 u16 u32 u64 u128 f32 f64 char str string bytes
        byte_buf option unit unit_struct newtype_struct seq tuple tuple_struct map enum
        identifier ignored_any
    }
}

#[cfg(test)]
mod tests {
    use serde::Deserialize;

    use super::*;
    use crate::playbook::ParamSpec;

    #[derive(Deserialize)]
    #[expect(dead_code, reason = "only its shape is read")]
    struct Params {
        name: String,
        #[serde(default)]
        size: u8,
        #[serde(rename = "zone")]
        availability_zone: Option<String>,
    }

    #[derive(Deserialize, Serialize)]
    struct Outputs {
        id: String,
    }

    const SPEC: KindSpec = KindSpec {
        kind: "test.kind",
        summary: "",
        parameters: &[
            ParamSpec {
                name: "name",
                required: true,
                help: "",
            },
            ParamSpec {
                name: "size",
                required: false,
                help: "",
            },
            ParamSpec {
                name: "zone",
                required: false,
                help: "",
            },
        ],
        outputs: &["id"],
    };

    #[test]
    fn field_names_are_read_off_the_struct() {
        assert_eq!(field_names::<Params>(), &["name", "size", "zone"]);
        assert_eq!(field_names::<String>(), &[] as &[&str]);
    }

    #[derive(Deserialize)]
    #[serde(bound = "")]
    struct Phased<P: Phase> {
        subnets: P::Later<Vec<String>>,
    }

    #[test]
    fn a_later_parameter_is_optional_only_while_planning() {
        let planned: Phased<Planning> = serde_json::from_value(serde_json::json!({})).unwrap();
        assert_eq!(planned.subnets, None);
        assert!(serde_json::from_value::<Phased<Applying>>(serde_json::json!({})).is_err());
        let applied: Phased<Applying> =
            serde_json::from_value(serde_json::json!({"subnets": ["a"]})).unwrap();
        assert_eq!(applied.subnets, ["a"]);
    }

    #[test]
    fn a_table_that_matches_passes() {
        check::<Params, Outputs>(
            &SPEC,
            &serde_json::json!({"name": "a", "size": 1, "zone": "z"}),
        );
        let values = outputs(&Outputs { id: "x".into() }).unwrap();
        assert_eq!(values["id"], serde_json::json!("x"));
    }

    #[test]
    #[should_panic(expected = "parameter `size` is required in the table but optional")]
    fn a_table_that_disagrees_on_required_fails() {
        const WRONG: KindSpec = KindSpec {
            parameters: &[
                ParamSpec {
                    name: "name",
                    required: true,
                    help: "",
                },
                ParamSpec {
                    name: "size",
                    required: true,
                    help: "",
                },
                ParamSpec {
                    name: "zone",
                    required: false,
                    help: "",
                },
            ],
            ..SPEC
        };
        check::<Params, Outputs>(
            &WRONG,
            &serde_json::json!({"name": "a", "size": 1, "zone": "z"}),
        );
    }

    #[test]
    #[should_panic(expected = "the parameter table and the typed parameters differ")]
    fn a_table_missing_a_field_fails() {
        const WRONG: KindSpec = KindSpec {
            parameters: &[ParamSpec {
                name: "name",
                required: true,
                help: "",
            }],
            ..SPEC
        };
        check::<Params, Outputs>(&WRONG, &serde_json::json!({"name": "a"}));
    }
}
