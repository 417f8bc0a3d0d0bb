//! Parsing the product and price forms.

use rust_decimal::Decimal;

use super::pricing::{self, PriceModel};
use crate::{
    accounts::domain::Fields, error::FieldErrors, invoicing::domain::TaxCategory, money::Currency,
};

text_enum!(Recognition {
    Ratable = "ratable" / "Ratably over the service period",
    PointInTime = "point_in_time" / "At a point in time",
});

text_enum!(ModelKind {
    Flat = "flat" / "Flat fee",
    PerUnit = "per_unit" / "Per unit (seats)",
    Tiered = "tiered" / "Tiered (graduated)",
    Volume = "volume" / "Volume",
    Usage = "usage" / "Usage with included quantity",
});

#[derive(Debug, Clone, PartialEq)]
pub struct ProductInput {
    pub sku: String,
    pub name: String,
    pub description: String,
    pub gl_revenue_account: String,
    pub tax_category: TaxCategory,
    pub recognition: Recognition,
}

impl ProductInput {
    pub fn parse(f: &Fields) -> Result<Self, FieldErrors> {
        let mut e = FieldErrors::default();
        let sku = f.get("sku").to_owned();
        let valid_sku = sku.len() <= 40
            && sku
                .chars()
                .next()
                .is_some_and(|c| c.is_ascii_alphanumeric())
            && sku
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || ".-_".contains(c));
        if sku.is_empty() {
            e.add("sku", "Enter a SKU.");
        } else if !valid_sku {
            e.add(
                "sku",
                "Use up to 40 letters, digits, dots, dashes or underscores.",
            );
        }
        let name = f.get("name").to_owned();
        if name.is_empty() {
            e.add("name", "Enter a product name.");
        } else if name.chars().count() > 200 {
            e.add("name", "Keep the name under 200 characters.");
        }
        let gl = f.get("gl_revenue_account").to_owned();
        if gl.is_empty() {
            e.add(
                "gl_revenue_account",
                "Enter the GL revenue account (e.g. 4000).",
            );
        } else if gl.chars().count() > 40 {
            e.add(
                "gl_revenue_account",
                "Keep the GL account under 40 characters.",
            );
        }
        let tax_category = TaxCategory::parse(f.get("tax_category"));
        if tax_category.is_none() {
            e.add("tax_category", "Choose a tax category.");
        }
        let recognition = Recognition::parse(f.get("revenue_recognition"));
        if recognition.is_none() {
            e.add("revenue_recognition", "Choose how revenue is recognised.");
        }
        match (tax_category, recognition) {
            (Some(tax_category), Some(recognition)) if e.is_empty() => Ok(Self {
                sku,
                name,
                description: f.get("description").to_owned(),
                gl_revenue_account: gl,
                tax_category,
                recognition,
            }),
            _ => Err(e),
        }
    }
}

/// The terms of one price version.
#[derive(Debug, Clone, PartialEq)]
pub struct PriceTerms {
    pub model: PriceModel,
    pub interval_months: i32,
    pub minimum_commit: Option<Decimal>,
}

#[derive(Debug, Clone, PartialEq)]
pub struct PriceInput {
    pub nickname: String,
    pub currency: Currency,
    pub terms: PriceTerms,
}

fn amount(f: &Fields, name: &str, label: &str, e: &mut FieldErrors) -> Decimal {
    match f.decimal(name) {
        Ok(Some(v)) => v,
        Ok(None) => {
            e.add(name, format!("Enter the {label}."));
            Decimal::ZERO
        }
        Err(m) => {
            e.add(name, m);
            Decimal::ZERO
        }
    }
}

impl PriceTerms {
    pub fn parse(f: &Fields) -> Result<Self, FieldErrors> {
        let mut e = FieldErrors::default();
        let model = match ModelKind::parse(f.get("model")) {
            None => {
                e.add("model", "Choose a pricing model.");
                None
            }
            Some(ModelKind::Flat) => Some(PriceModel::Flat {
                amount: amount(f, "amount", "amount per period", &mut e),
            }),
            Some(ModelKind::PerUnit) => Some(PriceModel::PerUnit {
                unit_amount: amount(f, "unit_amount", "price per unit", &mut e),
            }),
            Some(ModelKind::Usage) => {
                let unit_amount = amount(f, "unit_amount", "price per unit", &mut e);
                let included = match f.decimal("included") {
                    Ok(v) => v.unwrap_or(Decimal::ZERO),
                    Err(m) => {
                        e.add("included", m);
                        Decimal::ZERO
                    }
                };
                Some(PriceModel::Usage {
                    unit_amount,
                    included,
                })
            }
            Some(kind @ (ModelKind::Tiered | ModelKind::Volume)) => {
                match pricing::parse_tiers(f.get("tiers")) {
                    Ok(tiers) if kind == ModelKind::Tiered => Some(PriceModel::Tiered { tiers }),
                    Ok(tiers) => Some(PriceModel::Volume { tiers }),
                    Err(m) => {
                        e.add("tiers", m);
                        None
                    }
                }
            }
        };
        if let Some(m) = &model {
            if let Err(errs) = m.validate() {
                for (field, msg) in errs {
                    if e.get(field).is_none() {
                        e.add(field, msg);
                    }
                }
            }
        }
        let interval_months = match f.get("interval_months").parse::<i32>() {
            Ok(n) if (1..=36).contains(&n) => n,
            _ => {
                e.add("interval_months", "Quote the price per 1 to 36 months.");
                1
            }
        };
        let minimum_commit = match f.decimal("minimum_commit") {
            Ok(Some(v)) if v <= Decimal::ZERO => {
                e.add(
                    "minimum_commit",
                    "A minimum commit must be above zero (or left blank).",
                );
                None
            }
            Ok(v) => v,
            Err(m) => {
                e.add("minimum_commit", m);
                None
            }
        };
        match model {
            Some(model) if e.is_empty() => Ok(Self {
                model,
                interval_months,
                minimum_commit,
            }),
            _ => Err(e),
        }
    }
}

impl PriceInput {
    pub fn parse(f: &Fields) -> Result<Self, FieldErrors> {
        let mut e = FieldErrors::default();
        let nickname = f.get("nickname").to_owned();
        if nickname.is_empty() {
            e.add("nickname", "Name the price (e.g. \"Monthly list price\").");
        } else if nickname.chars().count() > 80 {
            e.add("nickname", "Keep the name under 80 characters.");
        }
        let currency = Currency::parse(f.get("currency"))
            .map_err(|m| e.add("currency", m))
            .ok();
        let terms = PriceTerms::parse(f).map_err(|te| e.0.extend(te.0)).ok();
        match (currency, terms) {
            (Some(currency), Some(terms)) if e.is_empty() => Ok(Self {
                nickname,
                currency,
                terms,
            }),
            _ => Err(e),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fields(pairs: &[(&str, &str)]) -> Fields {
        Fields::from_pairs(
            pairs
                .iter()
                .map(|(k, v)| ((*k).to_owned(), (*v).to_owned())),
        )
    }

    #[test]
    fn price_forms_parse_each_model_and_report_fields() {
        let ok = PriceInput::parse(&fields(&[
            ("nickname", "Seats"),
            ("currency", "eur"),
            ("model", "per_unit"),
            ("unit_amount", "1,200.50"),
            ("interval_months", "12"),
        ]))
        .unwrap();
        assert_eq!(ok.currency.code(), "EUR");
        assert_eq!(ok.terms.interval_months, 12);
        let bad = PriceInput::parse(&fields(&[
            ("nickname", ""),
            ("currency", "XYZ"),
            ("model", "tiered"),
            ("tiers", "10 5\nabc 4"),
            ("interval_months", "0"),
            ("minimum_commit", "-5"),
        ]))
        .unwrap_err();
        for f in [
            "nickname",
            "currency",
            "tiers",
            "interval_months",
            "minimum_commit",
        ] {
            assert!(bad.get(f).is_some(), "{f}: {bad:?}");
        }
    }

    #[test]
    fn product_form_requires_sku_name_and_gl_account() {
        let e = ProductInput::parse(&fields(&[("sku", "bad sku!"), ("tax_category", "x")]))
            .unwrap_err();
        for f in [
            "sku",
            "name",
            "gl_revenue_account",
            "tax_category",
            "revenue_recognition",
        ] {
            assert!(e.get(f).is_some(), "{f}");
        }
    }
}
