"""Writes the report-shape fixtures from plain.csv, as the tools named in
each file's name save a report (see tests/integration/shapes.rs)."""
import csv, io, json

text = open("plain.csv", encoding="utf-8-sig", newline="").read()
rows = list(csv.reader(io.StringIO(text, newline="")))
header, body = rows[0], rows[1:]

def write_csv(name, encoding, delimiter=",", terminator="\r\n", quoting=csv.QUOTE_MINIMAL, first=None):
    out = io.StringIO(newline="")
    if first:
        out.write(first + terminator)
    csv.writer(out, delimiter=delimiter, lineterminator=terminator, quoting=quoting).writerows(rows)
    with open(name, "wb") as f:
        f.write(out.getvalue().encode(encoding))

# Windows PowerShell 5.1 `Get-Content … > file` / Out-File: UTF-16 LE with a BOM.
write_csv("powershell-out-file-utf16le.csv", "utf-16")
write_csv("utf16be-bom.csv", "utf-16-be")  # no BOM from this codec: add it
data = open("utf16be-bom.csv", "rb").read()
open("utf16be-bom.csv", "wb").write(b"\xfe\xff" + data)
# UTF-8 without a BOM, LF line ends (Linux tools).
write_csv("utf8-no-bom-lf.csv", "utf-8", terminator="\n")
# Excel in a European locale: ';' separators, UTF-8 with a BOM.
write_csv("excel-semicolon.csv", "utf-8-sig", delimiter=";")
# Excel "Unicode text": UTF-16 LE, tab-separated.
write_csv("excel-unicode-text.txt", "utf-16", delimiter="\t")
# Windows PowerShell Export-Csv: a #TYPE line, every field quoted.
write_csv("powershell-export-csv.csv", "utf-8", quoting=csv.QUOTE_ALL,
          first="#TYPE System.Management.Automation.PSCustomObject")
# Excel for Mac "CSV (Macintosh)": CR line ends.
write_csv("excel-mac-cr.csv", "utf-8", terminator="\r", quoting=csv.QUOTE_ALL)

CAMEL = {
    "Report Refresh Date": "reportRefreshDate", "Group Display Name": "groupDisplayName",
    "Is Deleted": "isDeleted", "Owner Principal Name": "ownerPrincipalName",
    "Last Activity Date": "lastActivityDate", "Group Type": "groupType",
    "Member Count": "memberCount", "External Member Count": "externalMemberCount",
    "Exchange Received Email Count": "exchangeReceivedEmailCount",
    "SharePoint Active File Count": "sharePointActiveFileCount",
    "Yammer Posted Message Count": "yammerPostedMessageCount",
    "Yammer Read Message Count": "yammerReadMessageCount",
    "Yammer Liked Message Count": "yammerLikedMessageCount",
    "Exchange Mailbox Total Item Count": "exchangeMailboxTotalItemCount",
    "Exchange Mailbox Storage Used (Byte)": "exchangeMailboxStorageUsedInBytes",
    "SharePoint Total File Count": "sharePointTotalFileCount",
    "SharePoint Site Storage Used (Byte)": "sharePointSiteStorageUsedInBytes",
    "Group Id": "groupId", "Report Period": "reportPeriod",
}

def typed(name, value):
    if value == "":
        return None
    if name == "Is Deleted":
        return value == "True"
    if name in ("Report Period", "Group Id") or not ("Count" in name or "Byte" in name):
        return value
    return int(value)

# The /beta API with $format=application/json: one page, typed camelCase.
page = {
    "@odata.context": "https://graph.microsoft.com/beta/$metadata#Collection(microsoft.graph.office365GroupsActivityDetail)",
    "value": [{CAMEL[h]: typed(h, v) for h, v in zip(header, r)} for r in body],
}
json.dump(page, open("graph-beta-page.json", "w", encoding="utf-8"), indent=1, ensure_ascii=False)
# The CLI for Microsoft 365 / ConvertTo-Json: header names, every value a string.
json.dump([dict(zip(header, r)) for r in body], open("convertto-json-array.json", "w", encoding="utf-8-sig"), indent=2)
