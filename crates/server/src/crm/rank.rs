//! Kanban order keys: fractions in base 62 written as their digits after the point (`0-9`, `A-Z`,
//! `a-z`, in ASCII order, so bytewise comparison is numeric comparison), never ending in the zero
//! digit. Between any two different keys there is another, so moving a card writes only that
//! card; keys grow by about one digit per six moves into the same gap, and a column whose keys got
//! long is given fresh, evenly spaced ones ([`evenly`]).

const DIGITS: &[u8; 62] = b"0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz";
const BASE: u32 = 62;

/// Keys longer than this are worth a rebalance of their column.
pub const LONG: usize = 48;

fn digit(c: u8) -> Option<u8> {
    DIGITS.iter().position(|d| *d == c).map(|p| p as u8)
}

/// The digits of a valid key (non-empty, base 62, not ending in `0`), or None.
fn digits(key: &str) -> Option<Vec<u8>> {
    let digits: Option<Vec<u8>> = key.bytes().map(digit).collect();
    digits.filter(|d| d.last().is_some_and(|last| *last != 0))
}

fn encode(digits: &[u8]) -> String {
    digits.iter().map(|d| DIGITS[*d as usize] as char).collect()
}

/// A fraction strictly between `a` and `b` (`None`: 1), given `a < b`, neither ending in zero.
fn midpoint(a: &[u8], b: Option<&[u8]>) -> Vec<u8> {
    if let Some(b) = b {
        let common = b
            .iter()
            .enumerate()
            .take_while(|(i, d)| a.get(*i).copied().unwrap_or(0) == **d)
            .count();
        if common > 0 {
            let mut key = b[..common].to_vec();
            key.extend(midpoint(
                a.get(common..).unwrap_or_default(),
                Some(&b[common..]),
            ));
            return key;
        }
    }
    let low = u32::from(a.first().copied().unwrap_or(0));
    let high = b.and_then(|b| b.first()).map_or(BASE, |d| u32::from(*d));
    if high - low > 1 {
        return vec![((low + high) / 2) as u8];
    }
    // Neighbouring first digits: b's first digit alone, if b goes on; else a's, then further.
    if let Some(b) = b.filter(|b| b.len() > 1) {
        return vec![b[0]];
    }
    let mut key = vec![low as u8];
    key.extend(midpoint(a.get(1..).unwrap_or_default(), None));
    key
}

/// `key` moved one unit in its last place (at least the third), up or down; None when that
/// leaves the range (or reaches zero, which is no key). At a column's ends this keeps keys short:
/// appending a card thousands of times adds no digit, where halving the gap to the end would add
/// one every six cards.
fn step(key: &[u8], up: bool) -> Option<Vec<u8>> {
    let mut digits = key.to_vec();
    digits.resize(key.len().max(3), 0);
    let mut place = digits.len();
    loop {
        place = place.checked_sub(1)?;
        match (up, digits[place]) {
            (true, 61) => digits[place] = 0,
            (true, d) => {
                digits[place] = d + 1;
                break;
            }
            (false, 0) => digits[place] = 61,
            (false, d) => {
                digits[place] = d - 1;
                break;
            }
        }
    }
    while digits.last() == Some(&0) {
        digits.pop();
    }
    (!digits.is_empty()).then_some(digits)
}

/// A key between `before` and `after` (either may be absent: the column's start or end), or
/// `None` when there is none: equal or out-of-order neighbours (rebalance the column first).
pub fn between(before: Option<&str>, after: Option<&str>) -> Option<String> {
    let low = match before {
        Some(key) => Some(digits(key)?),
        None => None,
    };
    let high = match after {
        Some(key) => Some(digits(key)?),
        None => None,
    };
    let key = match (&low, &high) {
        (Some(low), Some(high)) if high <= low => return None,
        (Some(low), None) => step(low, true).unwrap_or_else(|| midpoint(low, None)),
        (None, Some(high)) => step(high, false).unwrap_or_else(|| midpoint(&[], Some(high))),
        (low, high) => midpoint(low.as_deref().unwrap_or_default(), high.as_deref()),
    };
    Some(encode(&key))
}

/// `n` keys in increasing order, evenly spaced and as short as `n` allows.
pub fn evenly(n: usize) -> Vec<String> {
    let mut width = 1;
    while 62_u128.pow(width) <= n as u128 + 1 {
        width += 1;
    }
    let span = 62_u128.pow(width);
    (1..=n as u128)
        .map(|i| {
            let mut value = i * span / (n as u128 + 1);
            let mut digits = vec![0_u8; width as usize];
            for d in digits.iter_mut().rev() {
                *d = (value % 62) as u8;
                value /= 62;
            }
            while digits.last() == Some(&0) {
                digits.pop();
            }
            encode(&digits)
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn valid(key: &str) -> bool {
        digits(key).is_some()
    }

    #[test]
    fn a_key_fits_between_any_two_different_keys() {
        assert_eq!(between(None, None).as_deref(), Some("V"));
        for (low, high) in [
            (None, Some("1")),
            (Some("1"), Some("2")),
            (Some("1"), Some("11")),
            (Some("z"), None),
            (Some("zzz"), None),
            (Some("0001"), Some("0002")),
            (Some("V"), Some("V1")),
            (Some("Az"), Some("B")),
        ] {
            let key = between(low, high).expect("a key");
            assert!(valid(&key), "{key}");
            assert!(low.is_none_or(|low| low < key.as_str()), "{low:?} < {key}");
            assert!(
                high.is_none_or(|high| key.as_str() < high),
                "{key} < {high:?}"
            );
        }
    }

    #[test]
    fn equal_reversed_or_malformed_neighbours_have_no_key_between() {
        assert_eq!(between(Some("V"), Some("V")), None);
        assert_eq!(between(Some("W"), Some("V")), None);
        assert_eq!(between(Some("V0"), None), None, "a trailing zero digit");
        assert_eq!(between(Some("V-"), None), None);
        assert_eq!(between(Some(""), None), None);
    }

    #[test]
    fn many_moves_into_one_gap_keep_the_order_and_grow_slowly() {
        // Always between the first two cards: the worst case for key length.
        let mut column = vec![between(None, None).expect("first")];
        column.push(between(Some(&column[0]), None).expect("second"));
        for _ in 0..300 {
            let key = between(Some(&column[0]), Some(&column[1])).expect("between");
            column.insert(1, key);
        }
        assert!(column.windows(2).all(|w| w[0] < w[1]));
        assert!(column.iter().all(|k| valid(k)));
        let longest = column.iter().map(String::len).max().unwrap_or(0);
        // Each move halves the gap: a digit (62 values) per about six moves.
        assert!(
            longest <= 300 / 5 + 4,
            "{longest} digits after 300 moves into one gap"
        );
        // Pseudo-random places, deterministic.
        let mut seed: u64 = 7;
        for _ in 0..2000 {
            seed = seed
                .wrapping_mul(6364136223846793005)
                .wrapping_add(1442695040888963407);
            let at = (seed >> 33) as usize % (column.len() + 1);
            let low = at.checked_sub(1).map(|i| column[i].as_str());
            let key = between(low, column.get(at).map(String::as_str)).expect("between");
            column.insert(at, key);
        }
        assert!(column.windows(2).all(|w| w[0] < w[1]));
    }

    #[test]
    fn cards_added_at_either_end_keep_short_keys() {
        let mut top = between(None, None).expect("first");
        let mut bottom = top.clone();
        for _ in 0..5000 {
            let below = between(Some(&bottom), None).expect("append");
            assert!(bottom < below);
            bottom = below;
            let above = between(None, Some(&top)).expect("prepend");
            assert!(above < top);
            top = above;
        }
        assert!(top.len() <= 3 && bottom.len() <= 3, "{top} … {bottom}");
        // Past the last step, halving still finds room.
        assert_eq!(between(Some("zzz"), None).as_deref(), Some("zzzV"));
        assert!(between(None, Some("001")).is_some_and(|k| k.as_str() < "001"));
    }

    #[test]
    fn evenly_spaced_keys_are_ordered_valid_and_short() {
        for n in [0, 1, 2, 61, 62, 3843, 5000] {
            let keys = evenly(n);
            assert_eq!(keys.len(), n);
            assert!(keys.windows(2).all(|w| w[0] < w[1]), "n = {n}");
            assert!(keys.iter().all(|k| valid(k)), "n = {n}");
            assert!(keys.iter().all(|k| k.len() <= 3), "n = {n}");
        }
        // And there is room at both ends and in every gap.
        let keys = evenly(100);
        assert!(between(None, Some(&keys[0])).is_some());
        assert!(between(Some(&keys[99]), None).is_some());
    }
}
