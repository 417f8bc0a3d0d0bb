//! The built-in sandbox gateway: test cards with deterministic outcomes, for demos, trials
//! and tests. Like a real gateway it keeps its own ledger keyed by idempotency key, so asking
//! twice returns the first answer and charges once.
//!
//! Test cards (any future expiry):
//! | number              | outcome                                  |
//! |---------------------|------------------------------------------|
//! | 4242 4242 4242 4242 | success                                  |
//! | 4000 0000 0000 9995 | soft decline: insufficient funds         |
//! | 4000 0000 0000 9987 | hard decline: lost card                  |
//! | 4000 0000 0000 9979 | hard decline: stolen card                |
//! | 4000 0000 0000 0119 | retryable: processing error              |
//! Any other valid card number succeeds.

use diesel::prelude::*;
use futures_util::future::BoxFuture;
use rand::RngCore as _;

use super::{ChargeRequest, DeclineClass, Gateway, Outcome};
use crate::db::{self, schema::tenant::sandbox_charges, scope::TenantSchema, PgPool};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Behavior {
    Success,
    InsufficientFunds,
    LostCard,
    StolenCard,
    ProcessingError,
}

impl Behavior {
    fn code(self) -> &'static str {
        match self {
            Self::Success => "ok",
            Self::InsufficientFunds => "insufficient_funds",
            Self::LostCard => "lost_card",
            Self::StolenCard => "stolen_card",
            Self::ProcessingError => "processing_error",
        }
    }

    fn from_code(code: &str) -> Option<Self> {
        [
            Self::Success,
            Self::InsufficientFunds,
            Self::LostCard,
            Self::StolenCard,
            Self::ProcessingError,
        ]
        .into_iter()
        .find(|b| b.code() == code)
    }

    pub fn outcome(self, reference: String) -> Outcome {
        let declined = |class, code: &str, message: &str| Outcome::Declined {
            class,
            code: code.into(),
            message: message.into(),
            reference: Some(reference.clone()),
        };
        match self {
            Self::Success => Outcome::Succeeded {
                reference: reference.clone(),
            },
            Self::InsufficientFunds => declined(
                DeclineClass::Soft,
                "insufficient_funds",
                "The card has insufficient funds.",
            ),
            Self::LostCard => declined(
                DeclineClass::Hard,
                "lost_card",
                "The card was reported lost.",
            ),
            Self::StolenCard => declined(
                DeclineClass::Hard,
                "stolen_card",
                "The card was reported stolen.",
            ),
            Self::ProcessingError => declined(
                DeclineClass::Retryable,
                "processing_error",
                "The card could not be processed; try again later.",
            ),
        }
    }
}

/// A card after tokenization: what we may store.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Card {
    pub token: String,
    pub brand: String,
    pub last4: String,
}

/// Checks a card number (Luhn) and turns it into a token; the number itself is dropped.
pub fn tokenize(number: &str) -> Result<Card, String> {
    let digits: String = number
        .chars()
        .filter(|c| !c.is_whitespace() && *c != '-')
        .collect();
    if !(13..=19).contains(&digits.len()) || !digits.chars().all(|c| c.is_ascii_digit()) {
        return Err("Enter a card number of 13 to 19 digits.".into());
    }
    if !luhn(&digits) {
        return Err("That card number is not valid (check digit).".into());
    }
    let behavior = match digits.as_str() {
        "4000000000009995" => Behavior::InsufficientFunds,
        "4000000000009987" => Behavior::LostCard,
        "4000000000009979" => Behavior::StolenCard,
        "4000000000000119" => Behavior::ProcessingError,
        _ => Behavior::Success,
    };
    let brand = match digits.as_bytes().first() {
        Some(b'4') => "Visa",
        Some(b'5') | Some(b'2') => "Mastercard",
        Some(b'3') => "American Express",
        _ => "Card",
    };
    let mut nonce = [0u8; 8];
    rand::rng().fill_bytes(&mut nonce);
    Ok(Card {
        token: format!("tok_sandbox_{}_{}", behavior.code(), hex::encode(nonce)),
        brand: brand.into(),
        last4: digits[digits.len() - 4..].to_owned(),
    })
}

fn luhn(digits: &str) -> bool {
    let sum: u32 = digits
        .bytes()
        .rev()
        .enumerate()
        .map(|(i, b)| {
            let d = u32::from(b - b'0');
            if i % 2 == 1 {
                let x = d * 2;
                if x > 9 {
                    x - 9
                } else {
                    x
                }
            } else {
                d
            }
        })
        .sum();
    sum.is_multiple_of(10)
}

/// The behavior a token was issued with; unknown tokens decline hard, like a real gateway
/// that does not know the method.
pub fn behavior_of(token: &str) -> Option<Behavior> {
    let rest = token.strip_prefix("tok_sandbox_")?;
    let (code, _nonce) = rest.rsplit_once('_')?;
    Behavior::from_code(code)
}

pub struct SandboxGateway {
    pool: PgPool,
    schema: TenantSchema,
}

impl SandboxGateway {
    pub fn new(pool: PgPool, schema: TenantSchema) -> Self {
        Self { pool, schema }
    }

    async fn charge_once(&self, req: ChargeRequest) -> Outcome {
        let Some(behavior) = behavior_of(&req.method_token) else {
            return Outcome::Declined {
                class: DeclineClass::Hard,
                code: "resource_missing".into(),
                message: "The sandbox does not know this payment method.".into(),
                reference: None,
            };
        };
        let schema = self.schema.clone();
        let recorded = db::run(&self.pool, move |c| {
            db::scope::in_tenant(c, &schema, |c| {
                let mut nonce = [0u8; 12];
                rand::rng().fill_bytes(&mut nonce);
                diesel::insert_into(sandbox_charges::table)
                    .values((
                        sandbox_charges::idempotency_key.eq(&req.idempotency_key),
                        sandbox_charges::reference.eq(format!("ch_sandbox_{}", hex::encode(nonce))),
                        sandbox_charges::token.eq(&req.method_token),
                        sandbox_charges::amount_minor.eq(req.amount_minor),
                        sandbox_charges::currency.eq(&req.currency),
                        sandbox_charges::outcome.eq(behavior.code()),
                    ))
                    .on_conflict_do_nothing()
                    .execute(c)?;
                // A replayed key answers with what the first request got.
                Ok(sandbox_charges::table
                    .find(&req.idempotency_key)
                    .select((sandbox_charges::reference, sandbox_charges::outcome))
                    .first::<(String, String)>(c)?)
            })
        })
        .await;
        match recorded {
            Ok((reference, code)) => Behavior::from_code(&code)
                .unwrap_or(behavior)
                .outcome(reference),
            Err(e) => Outcome::Declined {
                class: DeclineClass::Retryable,
                code: "network".into(),
                message: format!("The sandbox gateway is unavailable: {e}"),
                reference: None,
            },
        }
    }
}

impl Gateway for SandboxGateway {
    fn name(&self) -> &'static str {
        "sandbox"
    }

    fn charge<'a>(&'a self, req: &'a ChargeRequest) -> BoxFuture<'a, Outcome> {
        Box::pin(self.charge_once(req.clone()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn test_cards_tokenize_to_their_behavior_and_drop_the_number() {
        for (number, behavior) in [
            ("4242 4242 4242 4242", Behavior::Success),
            ("4000-0000-0000-9995", Behavior::InsufficientFunds),
            ("4000000000009987", Behavior::LostCard),
            ("4000000000009979", Behavior::StolenCard),
            ("4000000000000119", Behavior::ProcessingError),
            ("5555555555554444", Behavior::Success),
        ] {
            let card = tokenize(number).unwrap();
            assert_eq!(behavior_of(&card.token), Some(behavior), "{number}");
            assert!(!card.token.contains(&number.replace([' ', '-'], "")));
        }
        let card = tokenize("5555555555554444").unwrap();
        assert_eq!(
            (card.brand.as_str(), card.last4.as_str()),
            ("Mastercard", "4444")
        );
    }

    #[test]
    fn invalid_numbers_are_refused() {
        assert!(tokenize("4242424242424241")
            .unwrap_err()
            .contains("check digit"));
        assert!(tokenize("4242").unwrap_err().contains("13 to 19"));
        assert!(tokenize("4242abcd42424242").is_err());
        assert_eq!(behavior_of("pm_123"), None);
    }

    #[test]
    fn every_behavior_maps_to_its_decline_class() {
        let class = |b: Behavior| match b.outcome("r".into()) {
            Outcome::Declined { class, .. } => Some(class),
            _ => None,
        };
        assert_eq!(class(Behavior::Success), None);
        assert_eq!(class(Behavior::InsufficientFunds), Some(DeclineClass::Soft));
        assert_eq!(class(Behavior::LostCard), Some(DeclineClass::Hard));
        assert_eq!(class(Behavior::StolenCard), Some(DeclineClass::Hard));
        assert_eq!(
            class(Behavior::ProcessingError),
            Some(DeclineClass::Retryable)
        );
    }
}
