//! Money is integer micro-dollars (1 USD = 1,000,000 µ$) everywhere below the edge; floats
//! appear only when a dialect renders `cost` or a credit balance.

/// Micro-dollars per US dollar.
pub const MICROS_PER_USD: i64 = 1_000_000;

/// Parses a decimal USD amount such as `12.50` or `0.0006` into micro-dollars, exactly.
///
/// At most six decimal places; no sign, no exponent, no thousands separators.
pub fn parse_usd(s: &str) -> Result<i64, String> {
    let t = s.trim().trim_start_matches('$');
    let bad = || format!("'{s}' is not a USD amount: write it like 12.50 or 0.0006 (at most 6 decimals)");
    let (int, frac) = match t.split_once('.') {
        Some((i, f)) => (i, f),
        None => (t, ""),
    };
    if int.is_empty() && frac.is_empty()
        || !int.bytes().all(|b| b.is_ascii_digit())
        || !frac.bytes().all(|b| b.is_ascii_digit())
        || frac.len() > 6
    {
        return Err(bad());
    }
    let whole: i64 = if int.is_empty() { 0 } else { int.parse().map_err(|_| bad())? };
    let mut frac_micros: i64 = 0;
    for (i, b) in frac.bytes().enumerate() {
        frac_micros += i64::from(b - b'0') * 10i64.pow(5 - i as u32);
    }
    whole.checked_mul(MICROS_PER_USD).and_then(|w| w.checked_add(frac_micros)).ok_or_else(bad)
}

/// Renders micro-dollars as a plain decimal USD string, e.g. `10.000000` → `10.00`, `0.0006`.
pub fn format_usd(micros: i64) -> String {
    let sign = if micros < 0 { "-" } else { "" };
    let m = micros.unsigned_abs();
    let whole = m / MICROS_PER_USD as u64;
    let frac = m % MICROS_PER_USD as u64;
    let mut f = format!("{frac:06}");
    while f.len() > 2 && f.ends_with('0') {
        f.pop();
    }
    format!("{sign}{whole}.{f}")
}

/// Micro-dollars as a USD float, for `cost` fields at the edge only.
pub fn to_usd_f64(micros: i64) -> f64 {
    micros as f64 / MICROS_PER_USD as f64
}

/// Deserializes a USD amount written as a string (`"12.50"`) or a number (`12.5`) into its
/// string form. Configuration sources that type values themselves (environment variables, TOML
/// without quotes) produce numbers; the amount is then parsed exactly by [`parse_usd`].
pub fn deserialize_usd<'de, D: serde::Deserializer<'de>>(d: D) -> Result<String, D::Error> {
    #[derive(serde::Deserialize)]
    #[serde(untagged)]
    enum Amount {
        Text(String),
        Int(u64),
        Float(f64),
    }
    Ok(match Amount::deserialize(d)? {
        Amount::Text(s) => s,
        Amount::Int(i) => i.to_string(),
        Amount::Float(f) => f.to_string(),
    })
}

use serde::Deserialize as _;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_exact_amounts() {
        assert_eq!(parse_usd("12.50").unwrap(), 12_500_000);
        assert_eq!(parse_usd("10").unwrap(), 10_000_000);
        assert_eq!(parse_usd("0.0006").unwrap(), 600);
        assert_eq!(parse_usd("$3.000001").unwrap(), 3_000_001);
        assert_eq!(parse_usd(".5").unwrap(), 500_000);
        for bad in ["", "-1", "1.2345678", "1e3", "abc", "1,000", "."] {
            assert!(parse_usd(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn formats_round_trip() {
        for s in ["12.50", "0.0006", "10.00", "3.000001"] {
            assert_eq!(format_usd(parse_usd(s).unwrap()), s);
        }
        assert_eq!(format_usd(-1_500_000), "-1.50");
    }
}
