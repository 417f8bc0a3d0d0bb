//! Small declarative macros shared by feature modules.

/// A closed set of values stored as text (the column has a matching CHECK), with a label for
/// the UI and a lenient parser that accepts the code or the label.
macro_rules! text_enum {
    ($name:ident { $($variant:ident = $code:literal / $label:literal),* $(,)? }) => {
        #[derive(Debug, Clone, Copy, PartialEq, Eq, ::serde::Serialize, ::serde::Deserialize)]
        #[serde(rename_all = "snake_case")]
        pub enum $name { $($variant),* }

        impl $name {
            pub const ALL: &'static [$name] = &[$($name::$variant),*];

            pub fn as_str(self) -> &'static str {
                match self { $($name::$variant => $code),* }
            }

            pub fn label(self) -> &'static str {
                match self { $($name::$variant => $label),* }
            }

            pub fn parse(raw: &str) -> Option<Self> {
                let raw = raw.trim().to_lowercase();
                Self::ALL.iter().copied().find(|v| v.as_str() == raw || v.label().to_lowercase() == raw)
            }

            /// `(code, label)` pairs for a select.
            pub fn options() -> Vec<(&'static str, &'static str)> {
                Self::ALL.iter().map(|v| (v.as_str(), v.label())).collect()
            }
        }
    };
}
