//! Price models for catalog items: flat, per unit, graduated ("tiered"), volume and usage.
//!
//! Rules: money is `Decimal`, never f64. `amount` is the full-period figure, unrounded, so the
//! caller rounds once per invoice line. Quantity 0 bills nothing except under the Flat model (a
//! tier's flat fee needs a unit in that tier); a negative quantity counts as 0. A tier covers
//! (previous `up_to`, `up_to`], and the last tier is treated as unbounded even if saved
//! otherwise, so no unit is ever priced at nothing by accident.

use std::str::FromStr;

use rust_decimal::Decimal;
use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Tier {
    /// Inclusive upper limit; `None` = unbounded, only for the last tier.
    pub up_to: Option<Decimal>,
    pub unit_amount: Decimal,
    pub flat_amount: Decimal,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "model", rename_all = "snake_case")]
pub enum PriceModel {
    /// Fixed fee per period; quantity ignored.
    Flat { amount: Decimal },
    /// `unit_amount` × quantity (seats).
    PerUnit { unit_amount: Decimal },
    /// Graduated: each unit at its own tier's price, plus the flat fee of every tier reached.
    Tiered { tiers: Vec<Tier> },
    /// All units priced at the tier the total quantity falls in, plus that tier's flat fee.
    Volume { tiers: Vec<Tier> },
    /// Overage: max(0, quantity − included) × `unit_amount`.
    Usage {
        unit_amount: Decimal,
        included: Decimal,
    },
}

type FieldErrors = Vec<(&'static str, String)>;

impl PriceModel {
    pub fn kind(&self) -> &'static str {
        match self {
            Self::Flat { .. } => "flat",
            Self::PerUnit { .. } => "per_unit",
            Self::Tiered { .. } => "tiered",
            Self::Volume { .. } => "volume",
            Self::Usage { .. } => "usage",
        }
    }

    pub fn is_usage(&self) -> bool {
        matches!(self, Self::Usage { .. })
    }

    /// Full-period amount for `quantity`, unrounded (caller rounds at line level).
    /// Quantity 0 → 0 for every model except Flat.
    pub fn amount(&self, quantity: Decimal) -> Decimal {
        let qty = quantity.max(Decimal::ZERO);
        match self {
            Self::Flat { amount } => *amount,
            Self::PerUnit { unit_amount } => unit_amount * qty,
            Self::Tiered { tiers } => graduated(tiers, qty),
            Self::Volume { tiers } => volume(tiers, qty),
            Self::Usage {
                unit_amount: u,
                included: i,
            } => (qty - i).max(Decimal::ZERO) * u,
        }
    }

    /// Average unit price to display on an invoice line: amount / quantity (quantity 0 → 0;
    /// Flat → amount).
    pub fn unit_price(&self, quantity: Decimal) -> Decimal {
        match self {
            Self::Flat { amount } => *amount,
            _ if quantity <= Decimal::ZERO => Decimal::ZERO,
            // checked: a tiny quantity could overflow the quotient.
            _ => self
                .amount(quantity)
                .checked_div(quantity)
                .unwrap_or_default(),
        }
    }

    /// Field-level validation; fields are "amount", "unit_amount", "included" and "tiers".
    pub fn validate(&self) -> Result<(), FieldErrors> {
        const UNIT: &str = "The unit price cannot be negative.";
        let checks = match self {
            Self::Flat { amount } => vec![("amount", *amount, "The amount cannot be negative.")],
            Self::PerUnit { unit_amount: u } => vec![("unit_amount", *u, UNIT)],
            Self::Usage {
                unit_amount: u,
                included: i,
            } => vec![
                ("unit_amount", *u, UNIT),
                ("included", *i, "The included quantity cannot be negative."),
            ],
            Self::Tiered { .. } | Self::Volume { .. } => vec![],
        };
        let mut errors: FieldErrors = checks
            .into_iter()
            .filter(|(_, value, _)| *value < Decimal::ZERO)
            .map(|(field, _, message)| (field, message.to_string()))
            .collect();
        if let Self::Tiered { tiers } | Self::Volume { tiers } = self {
            check_tiers(tiers, &mut errors);
        }
        if errors.is_empty() {
            Ok(())
        } else {
            Err(errors)
        }
    }

    /// One-line human summary, e.g. "200.00 per period" or "graduated: 1–10 at 5.00, 11+ at 4.00".
    pub fn summary(&self) -> String {
        match self {
            Self::Flat { amount } => format!("{} per period", money(*amount)),
            Self::PerUnit { unit_amount } => format!("{} per unit", money(*unit_amount)),
            Self::Tiered { tiers } => format!("graduated: {}", tier_summary(tiers)),
            Self::Volume { tiers } => format!("volume: {}", tier_summary(tiers)),
            Self::Usage {
                unit_amount: u,
                included: i,
            } if i.is_zero() => {
                format!("{} per unit used", money(*u))
            }
            Self::Usage {
                unit_amount: u,
                included: i,
            } => {
                format!("{} per unit over {} included", money(*u), qty(*i))
            }
        }
    }
}

/// The bound a tier is priced up to; the last tier always takes the rest (see module rules).
fn effective_bound(tiers: &[Tier], index: usize) -> Option<Decimal> {
    if index + 1 == tiers.len() {
        None
    } else {
        tiers[index].up_to
    }
}

fn graduated(tiers: &[Tier], qty: Decimal) -> Decimal {
    let mut total = Decimal::ZERO;
    let mut floor = Decimal::ZERO;
    for (i, tier) in tiers.iter().enumerate() {
        if qty <= floor {
            break;
        }
        let bound = effective_bound(tiers, i);
        let top = bound.map_or(qty, |up| up.min(qty));
        if top > floor {
            total += (top - floor) * tier.unit_amount + tier.flat_amount;
        }
        // max() keeps unvalidated, non-increasing bounds from pricing a unit twice.
        floor = bound.map_or(qty, |up| up.max(floor));
    }
    total
}

fn volume(tiers: &[Tier], qty: Decimal) -> Decimal {
    if qty.is_zero() {
        return Decimal::ZERO;
    }
    (0..tiers.len())
        .find(|&i| effective_bound(tiers, i).is_none_or(|up| qty <= up))
        .map_or(Decimal::ZERO, |i| {
            qty * tiers[i].unit_amount + tiers[i].flat_amount
        })
}

fn check_tiers(tiers: &[Tier], errors: &mut FieldErrors) {
    if tiers.is_empty() {
        errors.push(("tiers", "Add at least one tier.".to_string()));
        return;
    }
    let mut push = |message: String| errors.push(("tiers", message));
    for (i, tier) in tiers.iter().enumerate() {
        let n = i + 1;
        let is_last = n == tiers.len();
        match tier.up_to {
            None if !is_last => push(format!(
                "Only the last tier can be unbounded; give tier {n} an upper limit."
            )),
            None => {}
            Some(up) => {
                if up <= Decimal::ZERO {
                    push(format!("Tier {n} must end above 0."));
                } else if let Some(prev) = i.checked_sub(1).and_then(|p| tiers[p].up_to) {
                    if up <= prev {
                        push(format!("Tier {n} must end above tier {i} ({}).", qty(prev)));
                    }
                }
                if is_last {
                    push(format!(
                        "The last tier (tier {n}) must have no upper limit (*) so that every \
                         quantity has a price."
                    ));
                }
            }
        }
        if tier.unit_amount < Decimal::ZERO {
            push(format!("Tier {n}'s unit price cannot be negative."));
        }
        if tier.flat_amount < Decimal::ZERO {
            push(format!("Tier {n}'s flat fee cannot be negative."));
        }
    }
}

/// Money for display: trailing zeros dropped, but never fewer than 2 decimals.
fn money(value: Decimal) -> String {
    let mut n = value.normalize();
    if n.scale() < 2 {
        n.rescale(2);
    }
    n.to_string()
}

fn qty(value: Decimal) -> String {
    value.normalize().to_string()
}

fn tier_summary(tiers: &[Tier]) -> String {
    if tiers.is_empty() {
        return "no tiers".to_string();
    }
    // "11–50" only reads right for whole units; fractional bounds get explicit wording.
    let whole = tiers
        .iter()
        .filter_map(|t| t.up_to)
        .all(|u| u.fract().is_zero());
    let mut floor: Option<Decimal> = None;
    let parts: Vec<String> = tiers
        .iter()
        .map(|t| {
            let from = floor.unwrap_or(Decimal::ZERO) + Decimal::ONE;
            let range = match (whole, floor, t.up_to) {
                (true, _, Some(up)) if up == from => qty(up),
                (true, _, Some(up)) => format!("{}–{}", qty(from), qty(up)),
                (true, _, None) => format!("{}+", qty(from)),
                (false, None, Some(up)) => format!("up to {}", qty(up)),
                (false, Some(f), Some(up)) => format!("over {} up to {}", qty(f), qty(up)),
                (false, Some(f), None) => format!("over {}", qty(f)),
                (false, None, None) => "any quantity".to_string(),
            };
            floor = t.up_to.or(floor);
            let flat =
                (!t.flat_amount.is_zero()).then(|| format!(" + {} flat", money(t.flat_amount)));
            format!(
                "{range} at {}{}",
                money(t.unit_amount),
                flat.unwrap_or_default()
            )
        })
        .collect();
    parts.join(", ")
}

/// Parses a textarea, one tier per line: `<up_to|*> <unit_amount> [flat_amount]`; blank lines are
/// ignored and `*`, `inf` or `∞` mean unbounded. Only syntax is checked here; run `validate()`.
pub fn parse_tiers(text: &str) -> Result<Vec<Tier>, String> {
    let mut tiers = Vec::new();
    for (i, line) in text.lines().enumerate() {
        // Numbered as the clerk sees them, blank lines included.
        let n = i + 1;
        let fields: Vec<&str> = line.split_whitespace().collect();
        let (up, unit, flat) = match fields.as_slice() {
            [] => continue,
            [up, unit] => (*up, *unit, None),
            [up, unit, flat] => (*up, *unit, Some(*flat)),
            _ => {
                return Err(format!(
                    "Line {n}: write an upper limit, a unit price and optionally a flat fee, \
                     e.g. \"10 5.00\" or \"* 3.00 25\"."
                ))
            }
        };
        let up_to = match up.to_lowercase().as_str() {
            "*" | "inf" | "∞" => None,
            _ => Some(number(n, up)?),
        };
        tiers.push(Tier {
            up_to,
            unit_amount: number(n, unit)?,
            flat_amount: flat.map_or(Ok(Decimal::ZERO), |f| number(n, f))?,
        });
    }
    Ok(tiers)
}

fn number(line: usize, text: &str) -> Result<Decimal, String> {
    Decimal::from_str(text).map_err(|_| format!("Line {line}: \"{text}\" is not a number."))
}

/// Inverse of `parse_tiers`, for re-displaying a form; scales are kept as entered.
pub fn format_tiers(tiers: &[Tier]) -> String {
    let line = |t: &Tier| {
        let up = t.up_to.map_or_else(|| "*".to_string(), |u| u.to_string());
        let flat = (!t.flat_amount.is_zero()).then(|| format!(" {}", t.flat_amount));
        format!("{up} {}{}", t.unit_amount, flat.unwrap_or_default())
    };
    tiers.iter().map(line).collect::<Vec<_>>().join("\n")
}

/// Minimum commit per period: the extra charge that lifts `charged` to `minimum` (0 if already
/// at or above it).
pub fn commit_top_up(charged: Decimal, minimum: Decimal) -> Decimal {
    (minimum - charged).max(Decimal::ZERO)
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn d(s: &str) -> Decimal {
        Decimal::from_str(s).unwrap()
    }

    fn tier(up_to: Option<&str>, unit: &str, flat: &str) -> Tier {
        let (unit_amount, flat_amount) = (d(unit), d(flat));
        Tier {
            up_to: up_to.map(d),
            unit_amount,
            flat_amount,
        }
    }

    fn three_tiers() -> Vec<Tier> {
        let (a, b) = (tier(Some("10"), "5", "0"), tier(Some("50"), "4", "0"));
        vec![a, b, tier(None, "3", "0")]
    }

    fn tiered(tiers: Vec<Tier>) -> PriceModel {
        PriceModel::Tiered { tiers }
    }

    fn volume(tiers: Vec<Tier>) -> PriceModel {
        PriceModel::Volume { tiers }
    }

    fn flat(amount: &str) -> PriceModel {
        PriceModel::Flat { amount: d(amount) }
    }

    fn per_unit(unit_amount: &str) -> PriceModel {
        PriceModel::PerUnit {
            unit_amount: d(unit_amount),
        }
    }

    fn usage(unit: &str, included: &str) -> PriceModel {
        let (unit_amount, included) = (d(unit), d(included));
        PriceModel::Usage {
            unit_amount,
            included,
        }
    }

    #[test]
    fn tiered_and_volume_differ_across_boundaries() {
        let graduated = tiered(three_tiers());
        let volume = volume(three_tiers());
        let table = [(0, 0, 0), (1, 5, 5), (10, 50, 50), (11, 54, 44)];
        let more = [(50, 210, 200), (51, 213, 153), (60, 240, 180)];
        for (q, t, v) in table.into_iter().chain(more) {
            let q = Decimal::from(q);
            assert_eq!(graduated.amount(q), Decimal::from(t), "tiered at {q}");
            assert_eq!(volume.amount(q), Decimal::from(v), "volume at {q}");
        }
        assert_eq!(graduated.unit_price(d("60")), d("4"));
        assert_eq!(volume.unit_price(d("0")), Decimal::ZERO);
    }

    #[test]
    fn tier_flat_amounts() {
        let tiers = vec![tier(Some("10"), "5", "20"), tier(None, "3", "25")];
        let (graduated, volume) = (tiered(tiers.clone()), volume(tiers));
        assert_eq!(graduated.amount(d("0")), d("0"));
        assert_eq!(graduated.amount(d("10")), d("70"));
        assert_eq!(graduated.amount(d("12")), d("101")); // 50 + 20 + 6 + 25
        assert_eq!(volume.amount(d("10")), d("70"));
        assert_eq!(volume.amount(d("12")), d("61"));
        assert_eq!(volume.amount(d("0")), d("0"));
    }

    #[test]
    fn flat_per_unit_usage_and_fractions() {
        let flat = flat("200");
        assert_eq!(flat.amount(d("0")), d("200"));
        assert_eq!(flat.amount(d("7")), d("200"));
        assert_eq!(flat.unit_price(d("0")), d("200"));
        let seats = per_unit("12.00");
        assert_eq!(seats.amount(d("2.5")), d("30"));
        assert_eq!(seats.amount(d("-3")), d("0"));
        let overage = usage("2.50", "10");
        assert_eq!(overage.amount(d("4")), d("0"));
        assert_eq!(overage.amount(d("10")), d("0"));
        assert_eq!(overage.amount(d("13")), d("7.5"));
        assert_eq!(overage.amount(d("10.25")), d("0.625"));
        assert_eq!(overage.unit_price(d("20")), d("1.25"));
        let graduated = tiered(three_tiers());
        assert_eq!(graduated.amount(d("10.5")), d("52"));
        assert!(overage.is_usage() && !seats.is_usage());
        let kinds = [flat.kind(), seats.kind(), graduated.kind(), overage.kind()];
        assert_eq!(kinds, ["flat", "per_unit", "tiered", "usage"]);
    }

    #[test]
    fn commit_top_up_lifts_to_minimum() {
        assert_eq!(commit_top_up(d("80"), d("100")), d("20"));
        assert_eq!(commit_top_up(d("100"), d("100")), d("0"));
        assert_eq!(commit_top_up(d("130.5"), d("100")), d("0"));
    }

    #[test]
    fn validation_messages() {
        assert!(tiered(three_tiers()).validate().is_ok());
        let (a, b) = (tier(Some("10"), "5", "0"), tier(Some("10"), "-1", "0"));
        let bad = tiered(vec![a, b, tier(None, "3", "-2"), tier(Some("0"), "3", "0")]);
        let errors = bad.validate().unwrap_err();
        let messages: Vec<&str> = errors.iter().map(|e| e.1.as_str()).collect();
        let last = "The last tier (tier 4) must have no upper limit (*) so that every quantity \
                    has a price.";
        assert_eq!(
            messages,
            [
                "Tier 2 must end above tier 1 (10).",
                "Tier 2's unit price cannot be negative.",
                "Only the last tier can be unbounded; give tier 3 an upper limit.",
                "Tier 3's flat fee cannot be negative.",
                "Tier 4 must end above 0.",
                last,
            ]
        );
        assert!(errors.iter().all(|e| e.0 == "tiers"));
        let empty = volume(vec![]).validate().unwrap_err();
        assert_eq!(empty, [("tiers", "Add at least one tier.".to_string())]);
        let fields: Vec<_> = usage("-1", "-5")
            .validate()
            .unwrap_err()
            .into_iter()
            .collect();
        assert_eq!((fields[0].0, fields[1].0), ("unit_amount", "included"));
        let negative = flat("-1").validate().unwrap_err();
        assert_eq!(
            negative,
            [("amount", "The amount cannot be negative.".into())]
        );
    }

    #[test]
    fn summaries() {
        assert_eq!(flat("200").summary(), "200.00 per period");
        assert_eq!(per_unit("12.000").summary(), "12.00 per unit");
        assert_eq!(per_unit("0.125").summary(), "0.125 per unit");
        let want = "2.50 per unit over 10 included";
        assert_eq!(usage("2.5", "10.00").summary(), want);
        assert_eq!(usage("2.5", "0").summary(), "2.50 per unit used");
        let want = "graduated: 1–10 at 5.00, 11–50 at 4.00, 51+ at 3.00";
        assert_eq!(tiered(three_tiers()).summary(), want);
        let tiers = vec![tier(Some("0.5"), "5", "0"), tier(None, "3", "25")];
        let want = "volume: up to 0.5 at 5.00, over 0.5 at 3.00 + 25.00 flat";
        assert_eq!(volume(tiers).summary(), want);
    }

    #[test]
    fn parse_and_format_round_trip() {
        let tiers = parse_tiers("10 5.00\n\n  50\t4.00  \n* 3.00 25\n").unwrap();
        let mut want = three_tiers();
        want[2].flat_amount = d("25");
        assert_eq!(tiers, want);
        assert_eq!(format_tiers(&tiers), "10 5.00\n50 4.00\n* 3.00 25");
        assert_eq!(parse_tiers(&format_tiers(&tiers)).unwrap(), tiers);
        assert_eq!(parse_tiers("INF 1\n").unwrap()[0].up_to, None);
        assert_eq!(parse_tiers("∞ 1").unwrap()[0].up_to, None);
        assert_eq!(parse_tiers("").unwrap(), []);
    }

    #[test]
    fn parse_errors_name_the_line() {
        let err = |text: &str| parse_tiers(text).unwrap_err();
        assert_eq!(err("10 5\nabc 4"), "Line 2: \"abc\" is not a number.");
        assert_eq!(err("10 5 x"), "Line 1: \"x\" is not a number.");
        assert!(err("\n\n10").starts_with("Line 3: write an upper limit"));
        assert!(err("1 2 3 4").starts_with("Line 1:"));
    }

    #[test]
    fn serde_uses_model_tag_and_string_amounts() {
        let json = serde_json::to_string(&flat("200.00")).unwrap();
        assert_eq!(json, r#"{"model":"flat","amount":"200.00"}"#);
        let back: PriceModel =
            serde_json::from_str(r#"{"model":"per_unit","unit_amount":"3"}"#).unwrap();
        assert_eq!(back, per_unit("3"));
    }

    fn money() -> impl Strategy<Value = Decimal> {
        (0i64..10_000_000).prop_map(|c| Decimal::new(c, 2))
    }

    /// Valid tier lists: increasing bounds, the last one unbounded.
    fn tier_lists() -> impl Strategy<Value = Vec<Tier>> {
        let raw = proptest::collection::vec((1i64..1_000, money(), money()), 1..6);
        raw.prop_map(|raw| {
            let (mut bound, last) = (Decimal::ZERO, raw.len() - 1);
            let tier = |(i, (step, unit_amount, flat_amount)): (usize, (i64, _, _))| {
                bound += Decimal::new(step, 1);
                Tier {
                    up_to: (i < last).then_some(bound),
                    unit_amount,
                    flat_amount,
                }
            };
            raw.into_iter().enumerate().map(tier).collect()
        })
    }

    proptest! {
        #[test]
        fn tiered_is_monotone(tiers in tier_lists(), a in 0i64..100_000, b in 0i64..100_000) {
            let model = tiered(tiers);
            prop_assert!(model.validate().is_ok());
            let (lo, hi) = (Decimal::new(a.min(b), 2), Decimal::new(a.max(b), 2));
            prop_assert!(model.amount(lo) <= model.amount(hi));
        }

        #[test]
        fn single_unbounded_tier_is_per_unit(unit_amount in money(), q in 0i64..1_000_000) {
            let qty = Decimal::new(q, 3);
            let one = Tier { up_to: None, unit_amount, flat_amount: Decimal::ZERO };
            let seats = PriceModel::PerUnit { unit_amount };
            prop_assert_eq!(tiered(vec![one]).amount(qty), seats.amount(qty));
        }

        #[test]
        fn format_then_parse_is_identity(tiers in tier_lists()) {
            prop_assert_eq!(parse_tiers(&format_tiers(&tiers)).unwrap(), tiers);
        }
    }
}
