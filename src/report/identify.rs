//! Other Microsoft 365 usage reports share most of this report's columns
//! (the Viva Engage groups report even has every required one), so a
//! wrong file would otherwise be read, or half-read, without complaint.
//! Their headers are recognised here and refused by name, with the
//! endpoint of the report groupwarden reads.

use super::header::match_key;

/// Another report, by the columns only it has.
struct OtherReport {
    name: &'static str,
    endpoint: &'static str,
    /// Match keys (see [`match_key`]) that must all be in the header.
    columns: &'static [&'static str],
}

/// Checked in order: the first match names the report.
const OTHER_REPORTS: &[OtherReport] = &[
    OtherReport {
        name: "Viva Engage (Yammer) groups activity",
        endpoint: "getYammerGroupsActivityDetail",
        columns: &["office365connected"],
    },
    OtherReport {
        name: "Viva Engage (Yammer) groups activity",
        endpoint: "getYammerGroupsActivityDetail",
        columns: &["postedcount", "readcount", "likedcount"],
    },
    OtherReport {
        name: "Microsoft Teams team activity",
        endpoint: "getTeamsTeamActivityDetail",
        columns: &["teamname", "teamid"],
    },
    OtherReport {
        name: "Microsoft Teams user activity",
        endpoint: "getTeamsUserActivityUserDetail",
        columns: &["userprincipalname", "teamchatmessagecount"],
    },
    OtherReport {
        name: "SharePoint site usage",
        endpoint: "getSharePointSiteUsageDetail",
        columns: &["siteurl", "rootwebtemplate"],
    },
    OtherReport {
        name: "SharePoint site usage",
        endpoint: "getSharePointSiteUsageDetail",
        columns: &["siteurl", "pageviewcount"],
    },
    OtherReport {
        name: "OneDrive usage",
        endpoint: "getOneDriveUsageAccountDetail",
        columns: &["siteurl", "storageallocatedbyte"],
    },
    OtherReport {
        name: "Microsoft 365 groups activity counts",
        endpoint: "getOffice365GroupsActivityCounts",
        columns: &["reportdate", "exchangeemailsreceived"],
    },
    OtherReport {
        name: "Microsoft 365 groups activity storage",
        endpoint: "getOffice365GroupsActivityStorage",
        columns: &["reportdate", "mailboxstorageusedbyte"],
    },
    OtherReport {
        name: "Microsoft 365 groups activity group counts or file counts",
        endpoint: "getOffice365GroupsActivityGroupCounts / getOffice365GroupsActivityFileCounts",
        columns: &["reportdate", "total", "active"],
    },
    OtherReport {
        name: "a per-user usage",
        endpoint: "a users report",
        columns: &["userprincipalname"],
    },
];

/// Why a header is not this report's, when it is another report's.
pub(crate) fn other_report(headers: &[String]) -> Option<String> {
    let keys: Vec<String> = headers.iter().map(|h| match_key(h)).collect();
    let has = |key: &&str| keys.iter().any(|k| k == key);
    let ours = has(&"groupdisplayname") && !has(&"office365connected");
    OTHER_REPORTS
        .iter()
        .filter(|report| !ours || report.columns.contains(&"office365connected"))
        .find(|report| report.columns.iter().all(&has))
        .map(|report| {
            format!(
                "this is the {} report ({}), not the Microsoft 365 groups activity report groupwarden reads: \
                 fetch reports/getOffice365GroupsActivityDetail (`groupwarden fetch`, or the admin center's \
                 Reports > Usage > Microsoft 365 groups > Export)",
                report.name, report.endpoint
            )
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn headers(line: &str) -> Vec<String> {
        line.split(',').map(str::to_owned).collect()
    }

    #[test]
    fn other_reports_are_named() {
        for (header, name) in [
            (
                "Report Refresh Date,Group Display Name,Is Deleted,Owner Principal Name,Last Activity Date,Group Type,Office 365 Connected,Member Count,Posted Count,Read Count,Liked Count,Report Period",
                "Viva Engage",
            ),
            (
                "Report Refresh Date,Team Name,Team Id,Team Type,Last Activity Date,Report Period,Active Users,Active Channels,Guests",
                "Teams team activity",
            ),
            (
                "Report Refresh Date,Site Id,Site URL,Owner Display Name,Is Deleted,Last Activity Date,File Count,Active File Count,Page View Count,Visited Page Count,Storage Used (Byte),Storage Allocated (Byte),Root Web Template,Owner Principal Name,Report Period",
                "SharePoint site usage",
            ),
            (
                "Report Refresh Date,Site URL,Owner Display Name,Is Deleted,Last Activity Date,File Count,Active File Count,Storage Used (Byte),Storage Allocated (Byte),Owner Principal Name,Report Period",
                "OneDrive usage",
            ),
            (
                "Report Refresh Date,Mailbox Storage Used (Byte),Site Storage Used (Byte),Report Date,Report Period",
                "groups activity storage",
            ),
            (
                "Report Refresh Date,Total,Active,Report Date,Report Period",
                "group counts",
            ),
            (
                "Report Refresh Date,Exchange Emails Received,Yammer Messages Posted,Yammer Messages Read,Yammer Messages Liked,Report Date,Report Period",
                "groups activity counts",
            ),
        ] {
            let refusal = other_report(&headers(header)).unwrap_or_default();
            assert!(refusal.contains(name), "{header}: {refusal}");
        }
    }

    #[test]
    fn this_report_in_every_spelling_is_not_another() {
        for header in [
            "Report Refresh Date,Group Display Name,Is Deleted,Owner Principal Name,Last Activity Date,Group Type,Member Count,External Member Count,Exchange Received Email Count,SharePoint Active File Count,Yammer Posted Message Count,Yammer Read Message Count,Yammer Liked Message Count,Exchange Mailbox Total Item Count,Exchange Mailbox Storage Used (Byte),SharePoint Total File Count,SharePoint Site Storage Used (Byte),Group Id,Report Period",
            "reportRefreshDate,groupDisplayName,isDeleted,ownerPrincipalName,lastActivityDate,memberCount,groupId,reportPeriod",
            "Report Refresh Date,Group Display Name,Is Deleted,Last Activity Date,Guest Count",
        ] {
            assert_eq!(other_report(&headers(header)), None, "{header}");
        }
    }
}
