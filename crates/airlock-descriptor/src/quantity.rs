//! Kubernetes resource quantities (`250m`, `0.5`, `128Mi`, `1G`, `1e3`).
//!
//! Parsed exactly (no floating point) so that ceilings and comparisons are
//! reliable. Fractions below the target unit round up, as Kubernetes does.

/// Why a string is not a usable Kubernetes quantity.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{input:?} is not a Kubernetes quantity: {reason}")]
pub struct QuantityError {
    /// The text that was rejected (truncated to 80 characters).
    pub input: String,
    /// What is wrong with it.
    pub reason: &'static str,
}

/// Longest quantity string accepted; real ones are a handful of characters.
const MAX_LEN: usize = 64;

fn err(input: &str, reason: &'static str) -> QuantityError {
    QuantityError {
        input: input.chars().take(80).collect(),
        reason,
    }
}

/// Parses a CPU quantity into millicores: `"250m"` → 250, `"1"` → 1000, `"0.5"` → 500.
pub fn parse_cpu(s: &str) -> Result<u64, QuantityError> {
    parse_scaled(s, 1000)
}

/// Parses a memory quantity into bytes: `"128Mi"` → 134217728, `"1G"` → 1000000000.
pub fn parse_memory(s: &str) -> Result<u64, QuantityError> {
    parse_scaled(s, 1)
}

/// Formats millicores the way Kubernetes users write them: `1000` → `"1"`, `250` → `"250m"`.
pub fn format_cpu(millis: u64) -> String {
    if millis.is_multiple_of(1000) {
        format!("{}", millis / 1000)
    } else {
        format!("{millis}m")
    }
}

/// Formats bytes with the largest exact binary suffix: `134217728` → `"128Mi"`.
pub fn format_memory(bytes: u64) -> String {
    for (suffix, shift) in [
        ("Ei", 60),
        ("Pi", 50),
        ("Ti", 40),
        ("Gi", 30),
        ("Mi", 20),
        ("Ki", 10),
    ] {
        let unit = 1u64 << shift;
        if bytes != 0 && bytes.is_multiple_of(unit) {
            return format!("{}{suffix}", bytes / unit);
        }
    }
    format!("{bytes}")
}

/// Parses `s` and returns its value times `scale`, rounded up to an integer.
fn parse_scaled(s: &str, scale: u128) -> Result<u64, QuantityError> {
    if s.is_empty() {
        return Err(err(s, "it is empty"));
    }
    if s.len() > MAX_LEN {
        return Err(err(s, "it is longer than 64 characters"));
    }
    let body = s.strip_prefix('+').unwrap_or(s);
    if body.starts_with('-') {
        return Err(err(s, "it is negative"));
    }
    let number_end = body
        .find(|c: char| !(c.is_ascii_digit() || c == '.'))
        .unwrap_or(body.len());
    let (number, suffix) = body.split_at(number_end);
    let (int_part, frac_part) = match number.split_once('.') {
        Some((i, f)) => (i, f),
        None => (number, ""),
    };
    if int_part.is_empty() && frac_part.is_empty() {
        return Err(err(s, "it does not start with a number"));
    }
    if frac_part.contains('.') {
        return Err(err(s, "it has more than one decimal point"));
    }
    if int_part.len() + frac_part.len() > 30 {
        return Err(err(s, "it has too many digits"));
    }
    let digits = format!("{int_part}{frac_part}");
    let mantissa: u128 = digits
        .parse()
        .map_err(|_| err(s, "it does not start with a number"))?;
    // value = mantissa / 10^frac * num / den
    let mut num: u128 = 1;
    let mut den: u128 = 10u128.pow(frac_part.len() as u32);
    match suffix {
        "" => {}
        "n" => den *= 1_000_000_000,
        "u" => den *= 1_000_000,
        "m" => den *= 1000,
        "k" => num *= 1000,
        "M" => num *= 1_000_000,
        "G" => num *= 1_000_000_000,
        "T" => num *= 1_000_000_000_000,
        "P" => num *= 1_000_000_000_000_000,
        "E" => num *= 1_000_000_000_000_000_000,
        "Ki" => num <<= 10,
        "Mi" => num <<= 20,
        "Gi" => num <<= 30,
        "Ti" => num <<= 40,
        "Pi" => num <<= 50,
        "Ei" => num <<= 60,
        exp if exp.starts_with(['e', 'E']) => {
            let e = &exp[1..];
            let (negative, digits) = match e.strip_prefix('-') {
                Some(d) => (true, d),
                None => (false, e.strip_prefix('+').unwrap_or(e)),
            };
            if digits.is_empty() || !digits.bytes().all(|b| b.is_ascii_digit()) || digits.len() > 2
            {
                return Err(err(s, "its exponent is not a small integer"));
            }
            let power: u32 = digits
                .parse()
                .map_err(|_| err(s, "its exponent is not a small integer"))?;
            if power > 18 {
                return Err(err(s, "its exponent is larger than 18"));
            }
            if negative {
                den *= 10u128.pow(power);
            } else {
                num *= 10u128.pow(power);
            }
        }
        _ => {
            return Err(err(
                s,
                "unknown suffix (use m, k, M, G, T, P, E, Ki, Mi, Gi, Ti, Pi, Ei, with no space)",
            ));
        }
    }
    let scaled = mantissa
        .checked_mul(num)
        .and_then(|v| v.checked_mul(scale))
        .ok_or_else(|| err(s, "it is too large"))?;
    let value = scaled.div_ceil(den);
    u64::try_from(value).map_err(|_| err(s, "it is too large"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_cpu_in_millicores() {
        assert_eq!(parse_cpu("250m"), Ok(250));
        assert_eq!(parse_cpu("1"), Ok(1000));
        assert_eq!(parse_cpu("0.5"), Ok(500));
        assert_eq!(parse_cpu("1.25"), Ok(1250));
        assert_eq!(parse_cpu("2k"), Ok(2_000_000));
        assert_eq!(parse_cpu("1e1"), Ok(10_000));
    }

    #[test]
    fn rounds_sub_millicore_cpu_up() {
        assert_eq!(parse_cpu("100u"), Ok(1));
        assert_eq!(parse_cpu("0.0001"), Ok(1));
    }

    #[test]
    fn parses_memory_in_bytes() {
        assert_eq!(parse_memory("128Mi"), Ok(128 * 1024 * 1024));
        assert_eq!(parse_memory("1G"), Ok(1_000_000_000));
        assert_eq!(parse_memory("1.5Gi"), Ok(3 * 512 * 1024 * 1024));
        assert_eq!(parse_memory("129e6"), Ok(129_000_000));
        assert_eq!(parse_memory("1024"), Ok(1024));
    }

    #[test]
    fn rejects_quantity_with_space_and_unknown_suffix() {
        let e = parse_memory("12 GB").unwrap_err();
        assert!(e.to_string().contains("\"12 GB\""), "{e}");
        assert!(e.reason.contains("unknown suffix"));
        assert!(parse_memory("12GB").is_err());
        assert!(parse_memory("Mi").is_err());
        assert!(parse_memory("").is_err());
        assert!(parse_memory("1.2.3").is_err());
    }

    #[test]
    fn rejects_negative_quantity() {
        assert_eq!(parse_cpu("-1").unwrap_err().reason, "it is negative");
    }

    #[test]
    fn rejects_quantity_that_overflows() {
        assert!(parse_memory("999999999999Ei").is_err());
        assert!(parse_cpu("1e99").is_err());
    }

    #[test]
    fn formats_round_trip() {
        assert_eq!(format_cpu(1000), "1");
        assert_eq!(format_cpu(250), "250m");
        assert_eq!(format_memory(128 * 1024 * 1024), "128Mi");
        assert_eq!(format_memory(1_000_000_000), "1000000000");
        assert_eq!(parse_memory(&format_memory(3 << 30)), Ok(3 << 30));
    }
}
