//! The Microsoft clouds: each has its own sign-in host and Graph host, and
//! a token for one cloud's Graph is worthless in another.

use serde::Deserialize;

/// Which Microsoft cloud the tenant lives in.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Cloud {
    /// The worldwide cloud.
    #[default]
    Global,
    /// US Government (GCC High).
    Usgov,
    /// US Government, Department of Defense.
    UsgovDod,
    /// Microsoft Azure operated by 21Vianet (China).
    China,
}

impl Cloud {
    /// The Microsoft Entra sign-in host, as a base URL.
    pub fn authority_url(self) -> &'static str {
        match self {
            Cloud::Global => "https://login.microsoftonline.com",
            Cloud::Usgov | Cloud::UsgovDod => "https://login.microsoftonline.us",
            Cloud::China => "https://login.chinacloudapi.cn",
        }
    }

    /// The Microsoft Graph host, as a base URL.
    pub fn graph_url(self) -> &'static str {
        match self {
            Cloud::Global => "https://graph.microsoft.com",
            Cloud::Usgov => "https://graph.microsoft.us",
            Cloud::UsgovDod => "https://dod-graph.microsoft.us",
            Cloud::China => "https://microsoftgraph.chinacloudapi.cn",
        }
    }

    /// Whether Graph's v1.0 API serves the groups activity report here.
    /// In the US Government clouds and in China the report is served only
    /// under `/beta`.
    pub fn serves_v1_report(self) -> bool {
        matches!(self, Cloud::Global)
    }

    /// The name as written in the config (`usgov-dod`).
    pub fn as_str(self) -> &'static str {
        match self {
            Cloud::Global => "global",
            Cloud::Usgov => "usgov",
            Cloud::UsgovDod => "usgov-dod",
            Cloud::China => "china",
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sovereign_clouds_have_their_own_hosts() {
        let parse = |name: &str| {
            toml::Value::String(name.into())
                .try_into::<Cloud>()
                .unwrap()
        };
        assert_eq!(
            parse("usgov-dod").graph_url(),
            "https://dod-graph.microsoft.us"
        );
        assert_eq!(
            parse("usgov-dod").authority_url(),
            "https://login.microsoftonline.us"
        );
        assert_eq!(
            parse("china").graph_url(),
            "https://microsoftgraph.chinacloudapi.cn"
        );
        assert_eq!(
            parse("global").authority_url(),
            "https://login.microsoftonline.com"
        );
    }

    #[test]
    fn only_the_global_cloud_serves_the_v1_report() {
        assert!(Cloud::Global.serves_v1_report());
        for cloud in [Cloud::Usgov, Cloud::UsgovDod, Cloud::China] {
            assert!(!cloud.serves_v1_report(), "{}", cloud.as_str());
        }
    }
}
