//! Positional parameters read the way geth reads them.
//!
//! Parameters are a JSON array. Missing trailing optional parameters and `null` mean "not given"; a missing
//! required one, a value of the wrong type and too many parameters are `-32602` with geth's messages
//! (`missing value for required argument 1`, `invalid argument 0: ...`, `too many arguments, want at most 2`).

use jsonrpsee::types::{ErrorObjectOwned, Params};
use serde::de::DeserializeOwned;
use serde_json::Value;

use crate::error::invalid_params;

/// The parameters of one call, read left to right.
#[derive(Debug)]
pub(crate) struct Args {
    values: std::vec::IntoIter<Value>,
    index: usize,
}

impl Args {
    /// Reads the parameter array of a call that takes at most `max` parameters.
    pub(crate) fn new(params: &Params<'_>, max: usize) -> Result<Self, ErrorObjectOwned> {
        let values: Vec<Value> = match params.as_str() {
            None => Vec::new(),
            Some(raw) => match serde_json::from_str::<Value>(raw) {
                Ok(Value::Array(values)) => values,
                Ok(Value::Null) => Vec::new(),
                Ok(_) => return Err(invalid_params("non-array args")),
                Err(err) => return Err(invalid_params(format!("invalid params: {err}"))),
            },
        };
        if values.len() > max {
            return Err(invalid_params(format!("too many arguments, want at most {max}")));
        }
        Ok(Self { values: values.into_iter(), index: 0 })
    }

    /// The next parameter, which must be present and of type `T`.
    pub(crate) fn required<T: DeserializeOwned>(&mut self) -> Result<T, ErrorObjectOwned> {
        let index = self.index;
        match self.optional::<T>()? {
            Some(value) => Ok(value),
            None => Err(invalid_params(format!("missing value for required argument {index}"))),
        }
    }

    /// The next parameter if present and not `null`; it must be of type `T`.
    pub(crate) fn optional<T: DeserializeOwned>(&mut self) -> Result<Option<T>, ErrorObjectOwned> {
        let index = self.index;
        self.index += 1;
        match self.values.next() {
            None | Some(Value::Null) => Ok(None),
            Some(value) => serde_json::from_value(value)
                .map(Some)
                .map_err(|err| invalid_params(format!("invalid argument {index}: {err}"))),
        }
    }

    /// The next parameter as raw JSON, if present and not `null`.
    pub(crate) fn optional_raw(&mut self) -> Option<Value> {
        self.index += 1;
        self.values.next().filter(|value| !value.is_null())
    }
}

/// A quantity given as a 0x-hex string, a decimal string or a JSON number (geth's `HexOrDecimal64`, which
/// `eth_feeHistory`'s block count accepts).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct HexOrDecimalU64(pub(crate) u64);

impl<'de> serde::Deserialize<'de> for HexOrDecimalU64 {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        use serde::de::Error;
        match Value::deserialize(deserializer)? {
            Value::Number(n) => n.as_u64().map(Self).ok_or_else(|| D::Error::custom("not a u64 quantity")),
            Value::String(s) => {
                let parsed = match s.strip_prefix("0x").or_else(|| s.strip_prefix("0X")) {
                    Some(hex) => u64::from_str_radix(hex, 16),
                    None => s.parse::<u64>(),
                };
                parsed.map(Self).map_err(|err| D::Error::custom(format!("invalid quantity {s:?}: {err}")))
            }
            _ => Err(D::Error::custom("expected a quantity")),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_geth_style() {
        let params = Params::new(Some(r#"["0x10", null]"#));
        let mut args = Args::new(&params, 3).unwrap();
        assert_eq!(args.required::<HexOrDecimalU64>().unwrap(), HexOrDecimalU64(16));
        assert_eq!(args.optional::<u64>().unwrap(), None);
        assert_eq!(args.optional::<u64>().unwrap(), None);
        let err = Args::new(&params, 1).unwrap_err();
        assert_eq!(err.message(), "too many arguments, want at most 1");
        let err = Args::new(&Params::new(None), 1).unwrap().required::<u64>().unwrap_err();
        assert_eq!(err.message(), "missing value for required argument 0");
        let err = Args::new(&Params::new(Some(r#"{"a":1}"#)), 1).unwrap_err();
        assert_eq!(err.message(), "non-array args");
        let err = Args::new(&Params::new(Some(r#"["x"]"#)), 1).unwrap().required::<u64>().unwrap_err();
        assert!(err.message().starts_with("invalid argument 0: "), "{}", err.message());
        assert_eq!(serde_json::from_str::<HexOrDecimalU64>("\"12\"").unwrap(), HexOrDecimalU64(12),);
    }
}
