//! Enums stored as `text` with a CHECK in the database: one declaration gives the Rust type, its
//! JSON and OpenAPI names, `as_str` for binding, `TryFrom<String>` for reading
//! (`#[sqlx(try_from = "String")]`) and `FromStr` for query parameters.

/// `text_enum! { /// doc  pub enum Status { Lead = "lead", Active = "active" } }`
#[macro_export]
macro_rules! text_enum {
    ($(#[doc = $doc:literal])* pub enum $name:ident { $($(#[$vmeta:meta])* $variant:ident = $text:literal),+ $(,)? }) => {
        $(#[doc = $doc])*
        #[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
        pub enum $name {
            $($(#[$vmeta])* #[serde(rename = $text)] $variant),+
        }

        // By hand: utoipa's derive does not see a `rename` that a macro wrote.
        impl utoipa::PartialSchema for $name {
            fn schema() -> utoipa::openapi::RefOr<utoipa::openapi::schema::Schema> {
                let doc = concat!($($doc, "\n"),*);
                let description = doc.lines().map(str::trim).collect::<Vec<_>>().join(" ");
                utoipa::openapi::schema::ObjectBuilder::new()
                    .schema_type(utoipa::openapi::schema::Type::String)
                    .enum_values(Some([$($text),+]))
                    .description((!description.is_empty()).then_some(description))
                    .into()
            }
        }

        impl utoipa::ToSchema for $name {}

        impl $name {
            pub const ALL: &'static [$name] = &[$($name::$variant),+];

            pub fn as_str(self) -> &'static str {
                match self {
                    $($name::$variant => $text),+
                }
            }
        }

        impl std::str::FromStr for $name {
            type Err = String;

            fn from_str(s: &str) -> std::result::Result<Self, String> {
                match s {
                    $($text => Ok($name::$variant),)+
                    other => Err(format!(
                        "{other:?} is not one of {}",
                        [$($text),+].join(", ")
                    )),
                }
            }
        }

        impl TryFrom<String> for $name {
            type Error = String;

            fn try_from(s: String) -> std::result::Result<Self, String> {
                s.parse()
            }
        }
    };
}

#[cfg(test)]
mod tests {
    text_enum! {
        /// A test enum.
        pub enum Colour { Red = "red", DarkBlue = "dark_blue" }
    }

    #[test]
    fn names_round_trip_through_text_and_json() {
        for colour in Colour::ALL {
            assert_eq!(colour.as_str().parse::<Colour>(), Ok(*colour));
            assert_eq!(
                serde_json::to_value(colour).ok(),
                Some(serde_json::Value::from(colour.as_str()))
            );
        }
        let schema = serde_json::to_value(<Colour as utoipa::PartialSchema>::schema()).ok();
        assert_eq!(
            schema,
            Some(
                serde_json::json!({"type": "string", "enum": ["red", "dark_blue"],
                                    "description": "A test enum."})
            )
        );
        assert_eq!(
            "blue".parse::<Colour>(),
            Err(r#""blue" is not one of red, dark_blue"#.to_string())
        );
    }
}
