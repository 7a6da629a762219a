//! The responsibility model: who owns which security domain, and which controls enforce it.

mod controls;
mod matrix;

pub use controls::*;
pub use matrix::*;

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

macro_rules! str_enum {
    ($(#[$m:meta])* $name:ident { $($(#[$vm:meta])* $variant:ident = $s:literal),+ $(,)? }) => {
        $(#[$m])*
        #[derive(Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, JsonSchema)]
        pub enum $name {
            $($(#[$vm])* #[serde(rename = $s)] $variant),+
        }

        impl $name {
            pub const ALL: &'static [$name] = &[$($name::$variant),+];

            pub fn as_str(self) -> &'static str {
                match self { $($name::$variant => $s),+ }
            }
        }

        impl std::fmt::Display for $name {
            fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str(self.as_str())
            }
        }

        impl std::str::FromStr for $name {
            type Err = String;
            fn from_str(s: &str) -> Result<Self, Self::Err> {
                match s {
                    $($s => Ok($name::$variant),)+
                    other => Err(format!(
                        "unknown {} {other:?}; expected one of: {}",
                        stringify!($name),
                        [$($s),+].join(", ")
                    )),
                }
            }
        }
    };
}
pub(crate) use str_enum;

str_enum!(
    /// Cloud provider.
    Provider { Aws = "aws", Azure = "azure", Gcp = "gcp" }
);

#[allow(clippy::derivable_impls)] // the variants come from a macro
impl Default for Provider {
    fn default() -> Self {
        Provider::Aws
    }
}

str_enum!(
    /// Cloud service model.
    ServiceModel { Iaas = "iaas", Paas = "paas", Saas = "saas" }
);

#[allow(clippy::derivable_impls)] // the variants come from a macro
impl Default for ServiceModel {
    fn default() -> Self {
        ServiceModel::Iaas
    }
}

str_enum!(
    /// A security domain of the shared-responsibility model.
    Domain {
        Physical = "physical",
        Infrastructure = "infrastructure",
        HostOs = "host-os",
        Platform = "platform",
        Network = "network",
        Application = "application",
        Identity = "identity",
        Data = "data",
        Logging = "logging",
    }
);

str_enum!(
    /// Who carries the duty for a domain.
    Owner { Provider = "provider", Customer = "customer", Shared = "shared" }
);

impl Owner {
    /// The customer must act on controls of this domain.
    pub fn customer_has_duty(self) -> bool {
        matches!(self, Owner::Customer | Owner::Shared)
    }
}
