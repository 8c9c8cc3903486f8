//! Parsing input: helpers shared by every slice's request types.

/// Tells a field given as `null` (`Some(None)`) from an absent one (`None`) in PATCH bodies.
pub fn present<'de, D, T>(d: D) -> Result<Option<Option<T>>, D::Error>
where
    D: serde::Deserializer<'de>,
    T: serde::Deserialize<'de>,
{
    <Option<T> as serde::Deserialize>::deserialize(d).map(Some)
}
