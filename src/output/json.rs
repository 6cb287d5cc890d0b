//! JSON lines and a single JSON document.

use std::io::{self, BufWriter, Write};

use super::{FindingWriter, SummaryView};
use crate::engine::finding::{EvidenceRef, Finding, FindingFields, Severity};
use crate::engine::render::{PreparedRule, Render, RuleShape};
use crate::scan::ScanSummary;
use crate::state::Status;

/// Writes `finding` as one JSON object, exactly as serde writes
/// [`Finding`] (or [`FindingWithStatus`](super::FindingWithStatus) when
/// there is a status): the field order, escapes and number forms are the
/// same, which the tests check. Written by hand because a big scan writes
/// hundreds of thousands of findings and serde's string escaping, a byte
/// at a time, was the largest cost of the writer thread.
pub fn write_finding(finding: &dyn FindingFields, status: Option<Status>, out: &mut Vec<u8>) {
    let prepared = finding.prepared();
    let [rule_part, separator, group_part] = finding.key_parts();
    match prepared {
        Some(prepared) => out.extend_from_slice(&prepared.head),
        None => write_head(
            out,
            finding.rule(),
            finding.severity(),
            [rule_part, separator],
        ),
    }
    let escaped = out.len();
    string_body(out, group_part);
    let escaped = escaped..out.len();
    out.extend_from_slice(b"\",\"group_id\":");
    match finding.group_id() {
        // The key's group part, escaped already: copied.
        Some(id) if std::ptr::eq(id.as_ref(), group_part) => {
            out.push(b'"');
            out.extend_from_within(escaped);
            out.push(b'"');
        }
        id => optional_string(out, id.as_deref()),
    }
    out.extend_from_slice(b",\"group_name\":");
    optional_string(out, finding.group_name().as_deref());
    out.extend_from_slice(b",\"owner\":");
    optional_string(out, finding.owner().as_deref());
    out.extend_from_slice(b",\"message\":");
    string(out, finding.message());
    out.extend_from_slice(b",\"line\":");
    match finding.line() {
        Some(line) => out.extend_from_slice(itoa::Buffer::new().format(line).as_bytes()),
        None => out.extend_from_slice(b"null"),
    }
    out.extend_from_slice(b",\"evidence\":{");
    let mut index = 0;
    finding.evidence(&mut |name, value| {
        if index > 0 {
            out.push(b',');
        }
        match prepared.and_then(|p| p.evidence_keys.get(index)) {
            Some(key) => out.extend_from_slice(key),
            None => write_key(out, name),
        }
        index += 1;
        match value {
            EvidenceRef::Null => out.extend_from_slice(b"null"),
            EvidenceRef::Bool(true) => out.extend_from_slice(b"true"),
            EvidenceRef::Bool(false) => out.extend_from_slice(b"false"),
            EvidenceRef::Int(i) => out.extend_from_slice(itoa::Buffer::new().format(i).as_bytes()),
            // Rare: serde_json's own float form (shortest round trip, null
            // for NaN and infinities).
            EvidenceRef::Float(f) => {
                let _ = serde_json::to_writer(&mut *out, &f);
            }
            EvidenceRef::Text(text) => string(out, text),
        }
    });
    out.push(b'}');
    if let Some(status) = status {
        out.extend_from_slice(b",\"status\":\"");
        out.extend_from_slice(status.as_str().as_bytes());
        out.push(b'"');
    }
    out.push(b'}');
}

/// `{"rule":…,"severity":…,"key":"` and the key's first parts.
fn write_head(out: &mut Vec<u8>, rule: &str, severity: Severity, key_start: [&str; 2]) {
    out.extend_from_slice(b"{\"rule\":");
    string(out, rule);
    out.extend_from_slice(b",\"severity\":\"");
    out.extend_from_slice(severity.as_str().as_bytes());
    out.extend_from_slice(b"\",\"key\":\"");
    for part in key_start {
        string_body(out, part);
    }
}

/// `"name":`
fn write_key(out: &mut Vec<u8>, name: &str) {
    string(out, name);
    out.push(b':');
}

/// The JSON of what all findings a rule renders from its rows share,
/// written once when the rule is loaded instead of for every finding (see
/// [`FindingFields::prepared`]): `{"rule":…,"severity":…,"key":"` and the
/// key's first two parts as the head, and `"name":` of each evidence
/// field.
pub fn prepare(rule: &RuleShape<'_>) -> PreparedRule {
    let mut head = Vec::new();
    write_head(&mut head, rule.rule, rule.severity, rule.key_start);
    let evidence_keys = rule
        .evidence
        .iter()
        .map(|name| {
            let mut key = Vec::new();
            write_key(&mut key, name);
            key
        })
        .collect();
    PreparedRule {
        head,
        evidence_keys,
    }
}

/// JSON lines rendered on the scan's workers ([`render_line`]).
#[derive(Debug)]
pub struct JsonLine;

impl Render for JsonLine {
    fn render(&self, finding: &dyn FindingFields, out: &mut Vec<u8>) {
        render_line(finding, out);
    }

    fn prepare(&self, rule: &RuleShape<'_>) -> PreparedRule {
        prepare(rule)
    }
}

/// Elements of the JSON document's findings array rendered on the scan's
/// workers ([`render_element`]).
#[derive(Debug)]
pub struct JsonElement;

impl Render for JsonElement {
    fn render(&self, finding: &dyn FindingFields, out: &mut Vec<u8>) {
        render_element(finding, out);
    }

    fn prepare(&self, rule: &RuleShape<'_>) -> PreparedRule {
        prepare(rule)
    }
}

/// One JSON line of a finding without status.
pub fn render_line(finding: &dyn FindingFields, out: &mut Vec<u8>) {
    write_finding(finding, None, out);
    out.push(b'\n');
}

/// One element of the JSON document's findings array, after its `,\n`.
pub fn render_element(finding: &dyn FindingFields, out: &mut Vec<u8>) {
    out.extend_from_slice(b",\n");
    write_finding(finding, None, out);
}

fn optional_string(out: &mut Vec<u8>, text: Option<&str>) {
    match text {
        Some(text) => string(out, text),
        None => out.extend_from_slice(b"null"),
    }
}

/// A JSON string: `"`, `\\` and control characters escaped as serde_json
/// does; everything else copied as it is.
fn string(out: &mut Vec<u8>, text: &str) {
    out.reserve(text.len() + 2);
    out.push(b'"');
    string_body(out, text);
    out.push(b'"');
}

/// The inside of a JSON string (no quotes).
fn string_body(out: &mut Vec<u8>, text: &str) {
    let bytes = text.as_bytes();
    // Nearly all text needs no escape and is copied whole.
    if is_clean(bytes) {
        out.extend_from_slice(bytes);
        return;
    }
    let needs = |b: u8| b < 0x20 || b == b'"' || b == b'\\';
    let mut start = 0;
    while let Some(offset) = bytes[start..].iter().position(|&b| needs(b)) {
        let at = start + offset;
        out.extend_from_slice(&bytes[start..at]);
        let byte = bytes[at];
        match byte {
            b'"' => out.extend_from_slice(b"\\\""),
            b'\\' => out.extend_from_slice(b"\\\\"),
            b'\n' => out.extend_from_slice(b"\\n"),
            b'\r' => out.extend_from_slice(b"\\r"),
            b'\t' => out.extend_from_slice(b"\\t"),
            0x08 => out.extend_from_slice(b"\\b"),
            0x0c => out.extend_from_slice(b"\\f"),
            _ => {
                const HEX: &[u8; 16] = b"0123456789abcdef";
                out.extend_from_slice(b"\\u00");
                out.push(HEX[usize::from(byte >> 4)]);
                out.push(HEX[usize::from(byte & 0xf)]);
            }
        }
        start = at + 1;
    }
    out.extend_from_slice(&bytes[start..]);
}

/// No byte of `bytes` needs a JSON escape. Tested sixteen bytes at a
/// time with SSE2, which every x86-64 processor has: a byte below 0x20 is
/// one whose unsigned maximum with 0x1f is 0x1f. (About a third of the
/// instructions of the eight-byte word test below, which serves other
/// processors: ids, names and messages are 20 to 60 bytes.)
#[cfg(target_arch = "x86_64")]
fn is_clean(bytes: &[u8]) -> bool {
    use std::arch::x86_64::{
        __m128i, _mm_cmpeq_epi8, _mm_loadu_si128, _mm_max_epu8, _mm_movemask_epi8, _mm_or_si128,
        _mm_set1_epi8,
    };
    // SAFETY (for the loads): SSE2 is part of the x86-64 baseline.
    let dirty = |block: &[u8; 16]| unsafe {
        let v = _mm_loadu_si128(block.as_ptr().cast::<__m128i>());
        let low = _mm_set1_epi8(0x1f);
        let control = _mm_cmpeq_epi8(_mm_max_epu8(v, low), low);
        let quote = _mm_cmpeq_epi8(v, _mm_set1_epi8(b'"' as i8));
        let backslash = _mm_cmpeq_epi8(v, _mm_set1_epi8(b'\\' as i8));
        _mm_movemask_epi8(_mm_or_si128(control, _mm_or_si128(quote, backslash))) != 0
    };
    let (blocks, tail) = bytes.as_chunks::<16>();
    if blocks.iter().any(dirty) {
        return false;
    }
    match bytes.last_chunk::<16>() {
        // The last sixteen bytes, some of them tested already.
        Some(last) if !tail.is_empty() => !dirty(last),
        Some(_) => true,
        // Shorter than a block: padded with spaces (which need no escape).
        None => {
            let mut last = [b' '; 16];
            last[..tail.len()].copy_from_slice(tail);
            !dirty(&last)
        }
    }
}

/// No byte of `bytes` needs a JSON escape. Tested eight bytes at a time:
/// a word has a byte below 0x20, a `"` or a `\\` exactly when one of the
/// classic "has a zero byte" / "has a byte less than n" bit tests is set.
#[cfg(not(target_arch = "x86_64"))]
fn is_clean(bytes: &[u8]) -> bool {
    const ONES: u64 = 0x0101_0101_0101_0101;
    const HIGH: u64 = 0x8080_8080_8080_8080;
    let zero_byte = |v: u64| v.wrapping_sub(ONES) & !v & HIGH;
    let dirty = |w: u64| {
        let control = w.wrapping_sub(ONES * 0x20) & !w & HIGH;
        let quote = zero_byte(w ^ (ONES * u64::from(b'"')));
        let backslash = zero_byte(w ^ (ONES * u64::from(b'\\')));
        control | quote | backslash != 0
    };
    let mut words = bytes.chunks_exact(8);
    for word in &mut words {
        if dirty(u64::from_le_bytes(word.try_into().unwrap_or_default())) {
            return false;
        }
    }
    // The last few bytes, padded with spaces (which need no escape).
    let tail = words.remainder();
    let mut last = [b' '; 8];
    last[..tail.len()].copy_from_slice(tail);
    !dirty(u64::from_le_bytes(last))
}

/// `{"tenant":"<name>",`: what opens every finding object of a tenant's
/// scan, prepared once (the tenant is the same for the whole scan).
fn tenant_prefix(tenant: &str) -> Vec<u8> {
    let mut prefix = b"{\"tenant\":".to_vec();
    string(&mut prefix, tenant);
    prefix.push(b',');
    prefix
}

/// Opens the finding object that starts at `at` in `buffer` with the
/// tenant's prefix instead of a bare `{`.
fn tag_at(buffer: &mut Vec<u8>, at: usize, prefix: &[u8]) {
    debug_assert_eq!(buffer.get(at), Some(&b'{'));
    buffer.splice(at..at + 1, prefix.iter().copied());
}

/// Rendered findings (lines, or elements each after `,\n`) with each
/// object opened by the tenant's prefix. The compact JSON has no raw line
/// break inside a finding, so an object starts at the start or after one.
fn write_tagged(out: &mut impl Write, bytes: &[u8], prefix: &[u8]) -> io::Result<()> {
    let mut start = 0;
    for end in memchr::memchr_iter(b'\n', bytes)
        .map(|at| at + 1)
        .chain([bytes.len()])
    {
        let piece = &bytes[start..end];
        match piece.split_first() {
            Some((b'{', rest)) => {
                out.write_all(prefix)?;
                out.write_all(rest)?;
            }
            _ => out.write_all(piece)?,
        }
        start = end;
    }
    Ok(())
}

fn write_through(out: &mut BufWriter<Box<dyn Write>>, bytes: &[u8]) -> io::Result<()> {
    out.flush()?;
    out.get_mut().write_all(bytes)
}

/// JSON Lines: one finding per line as a JSON object, written as it is
/// found; no summary.
pub struct JsonLinesWriter {
    out: BufWriter<Box<dyn Write>>,
    line: Vec<u8>,
    tenant: Option<Vec<u8>>,
}

impl JsonLinesWriter {
    /// A writer to `out`, buffered.
    pub fn new(out: Box<dyn Write>) -> Self {
        JsonLinesWriter {
            out: BufWriter::with_capacity(256 * 1024, out),
            line: Vec::with_capacity(1024),
            tenant: None,
        }
    }

    fn line(&mut self, finding: &Finding, status: Option<Status>) -> io::Result<()> {
        self.line.clear();
        write_finding(finding, status, &mut self.line);
        if let Some(prefix) = &self.tenant {
            tag_at(&mut self.line, 0, prefix);
        }
        self.line.push(b'\n');
        self.out.write_all(&self.line)
    }
}

impl FindingWriter for JsonLinesWriter {
    fn write(&mut self, finding: &Finding) -> io::Result<()> {
        self.line(finding, None)
    }

    fn write_with_status(&mut self, finding: &Finding, status: Status) -> io::Result<()> {
        self.line(finding, Some(status))
    }

    fn status_render(&self) -> Option<&'static dyn Render> {
        Some(&JsonLine)
    }

    /// `bytes`: the line [`render_line`] wrote, `{…}` and a line break;
    /// the status goes before its closing brace, as in [`write_finding`].
    fn write_rendered_with_status(&mut self, bytes: &[u8], status: Status) -> io::Result<()> {
        let Some(open) = bytes.strip_suffix(b"}\n") else {
            return Err(io::Error::other("a rendered finding is not a line"));
        };
        match &self.tenant {
            Some(prefix) => write_tagged(&mut self.out, open, prefix)?,
            None => self.out.write_all(open)?,
        }
        self.out.write_all(b",\"status\":\"")?;
        self.out.write_all(status.as_str().as_bytes())?;
        self.out.write_all(b"\"}\n")
    }

    fn render(&self) -> Option<&'static dyn Render> {
        Some(&JsonLine)
    }

    fn write_rendered(&mut self, bytes: &[u8]) -> io::Result<()> {
        match &self.tenant {
            Some(prefix) => write_tagged(&mut self.out, bytes, prefix),
            None => write_through(&mut self.out, bytes),
        }
    }

    fn finish(&mut self, _summary: &ScanSummary) -> io::Result<()> {
        self.out.flush()
    }

    fn set_tenant(&mut self, tenant: &str) {
        self.tenant = Some(tenant_prefix(tenant));
    }
}

/// `{"findings": [...], "summary": {...}}`, streamed: the summary comes
/// last because it is only known at the end.
pub struct JsonWriter {
    out: BufWriter<Box<dyn Write>>,
    count: u64,
    element: Vec<u8>,
    tenant: Option<Vec<u8>>,
}

impl JsonWriter {
    /// A writer to `out`, buffered; nothing is written before the first
    /// finding or [`FindingWriter::finish`].
    pub fn new(out: Box<dyn Write>) -> Self {
        JsonWriter {
            out: BufWriter::with_capacity(256 * 1024, out),
            count: 0,
            element: Vec::with_capacity(1024),
            tenant: None,
        }
    }

    fn element(&mut self, finding: &Finding, status: Option<Status>) -> io::Result<()> {
        self.element.clear();
        self.element.extend_from_slice(if self.count == 0 {
            b"{\"findings\":[\n"
        } else {
            b",\n"
        });
        self.count += 1;
        let start = self.element.len();
        write_finding(finding, status, &mut self.element);
        if let Some(prefix) = &self.tenant {
            tag_at(&mut self.element, start, prefix);
        }
        self.out.write_all(&self.element)
    }
}

impl FindingWriter for JsonWriter {
    fn write(&mut self, finding: &Finding) -> io::Result<()> {
        self.element(finding, None)
    }

    fn write_with_status(&mut self, finding: &Finding, status: Status) -> io::Result<()> {
        self.element(finding, Some(status))
    }

    fn render(&self) -> Option<&'static dyn Render> {
        Some(&JsonElement)
    }

    /// Elements rendered by [`render_element`], each after `,\n`: the very
    /// first separator becomes the document's opening instead.
    fn write_rendered(&mut self, bytes: &[u8]) -> io::Result<()> {
        let bytes = if self.count == 0 {
            self.out.write_all(b"{\"findings\":[\n")?;
            bytes.strip_prefix(b",\n").unwrap_or(bytes)
        } else {
            bytes
        };
        self.count += 1;
        match &self.tenant {
            Some(prefix) => write_tagged(&mut self.out, bytes, prefix),
            None => write_through(&mut self.out, bytes),
        }
    }

    fn set_tenant(&mut self, tenant: &str) {
        self.tenant = Some(tenant_prefix(tenant));
    }

    fn finish(&mut self, summary: &ScanSummary) -> io::Result<()> {
        self.out.write_all(if self.count == 0 {
            b"{\"findings\":["
        } else {
            b"\n"
        })?;
        self.out.write_all(b"],\n\"summary\":")?;
        serde_json::to_writer(&mut self.out, &SummaryView::new(summary))?;
        self.out.write_all(b"}\n")?;
        self.out.flush()
    }
}

#[cfg(test)]
mod tests {
    use std::borrow::Cow;
    use std::sync::Arc;

    use super::*;
    use crate::engine::finding::{Evidence, EvidenceMap, Severity};
    use crate::output::FindingWithStatus;

    fn finding(text: &str) -> Finding {
        let mut evidence = EvidenceMap::default();
        for (index, value) in [
            Evidence::Null,
            Evidence::Bool(true),
            Evidence::Bool(false),
            Evidence::Int(i64::MIN),
            Evidence::Int(42),
            Evidence::Float(0.1),
            Evidence::Float(-0.0),
            Evidence::Float(1e300),
            Evidence::Float(f64::NAN),
            Evidence::Float(f64::INFINITY),
            Evidence::Float(3.0),
            Evidence::Text(text.to_owned()),
        ]
        .into_iter()
        .enumerate()
        {
            evidence.set(format!("{text}{index}").into(), value);
        }
        Finding {
            rule: Arc::from(text),
            severity: Severity::Critical,
            key: format!("k:{text}"),
            group_id: Some(text.to_owned()),
            group_name: None,
            owner: Some(String::new()),
            message: format!("{text}{text}"),
            line: Some(u64::MAX),
            evidence,
        }
    }

    #[test]
    fn clean_text_is_told_from_text_to_escape_at_every_position() {
        for len in 0..40 {
            let base = vec![b'a'; len];
            assert!(is_clean(&base));
            for at in 0..len {
                for byte in (0u8..=0xff).filter(|b| b.is_ascii() || *b >= 0x80) {
                    let mut text = base.clone();
                    text[at] = byte;
                    let expected = byte >= 0x20 && byte != b'"' && byte != b'\\';
                    assert_eq!(is_clean(&text), expected, "{len} {at} {byte:#x}");
                }
            }
        }
    }

    /// A shared buffer, to read what a writer wrote.
    #[derive(Clone, Default)]
    struct Shared(std::rc::Rc<std::cell::RefCell<Vec<u8>>>);

    impl Write for Shared {
        fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
            self.0.borrow_mut().extend_from_slice(buf);
            Ok(buf.len())
        }
        fn flush(&mut self) -> io::Result<()> {
            Ok(())
        }
    }

    #[test]
    fn a_line_rendered_on_a_worker_gets_its_status_as_if_written_whole() {
        for tenant in [None, Some("Contoso \"EU\"")] {
            for status in [
                Status::New,
                Status::Open,
                Status::Reopened,
                Status::Exempted,
            ] {
                let (whole, parts) = (Shared::default(), Shared::default());
                let mut writers = [
                    JsonLinesWriter::new(Box::new(whole.clone())),
                    JsonLinesWriter::new(Box::new(parts.clone())),
                ];
                for writer in &mut writers {
                    if let Some(tenant) = tenant {
                        writer.set_tenant(tenant);
                    }
                }
                for text in ["plain", "quote \" and \\ and \n", "é✓ #QUOT#"] {
                    let finding = finding(text);
                    writers[0].write_with_status(&finding, status).unwrap();
                    let mut line = Vec::new();
                    writers[1]
                        .status_render()
                        .unwrap()
                        .render(&finding, &mut line);
                    writers[1]
                        .write_rendered_with_status(&line, status)
                        .unwrap();
                }
                for writer in &mut writers {
                    writer.out.flush().unwrap();
                }
                let whole = whole.0.borrow().clone();
                assert_eq!(
                    String::from_utf8(parts.0.borrow().clone()).unwrap(),
                    String::from_utf8(whole).unwrap()
                );
            }
        }
    }

    #[test]
    fn rendered_lines_and_elements_are_tagged_with_the_tenant() {
        let prefix = tenant_prefix("a\"b");
        let tag = |bytes: &[u8]| {
            let mut out = Vec::new();
            write_tagged(&mut out, bytes, &prefix).unwrap();
            String::from_utf8(out).unwrap()
        };
        assert_eq!(
            tag(b"{\"rule\":\"x\"}\n{\"rule\":\"y\"}\n"),
            "{\"tenant\":\"a\\\"b\",\"rule\":\"x\"}\n{\"tenant\":\"a\\\"b\",\"rule\":\"y\"}\n"
        );
        assert_eq!(
            tag(b",\n{\"rule\":\"x\"},\n{\"rule\":\"y\"}"),
            ",\n{\"tenant\":\"a\\\"b\",\"rule\":\"x\"},\n{\"tenant\":\"a\\\"b\",\"rule\":\"y\"}"
        );
    }

    #[test]
    fn prepared_rule_json_writes_the_same_bytes() {
        /// A finding with its rule's JSON prepared, as the evaluator's
        /// findings rendered from rows have it.
        struct Prepared<'a>(&'a Finding, &'a str, PreparedRule);
        impl FindingFields for Prepared<'_> {
            fn rule(&self) -> &str {
                self.0.rule()
            }
            fn severity(&self) -> Severity {
                self.0.severity()
            }
            fn key_parts(&self) -> [&str; 3] {
                ["k", ":", self.1]
            }
            fn group_id(&self) -> Option<Cow<'_, str>> {
                self.0.group_id()
            }
            fn group_name(&self) -> Option<Cow<'_, str>> {
                self.0.group_name()
            }
            fn owner(&self) -> Option<Cow<'_, str>> {
                self.0.owner()
            }
            fn message(&self) -> &str {
                self.0.message()
            }
            fn line(&self) -> Option<u64> {
                self.0.line()
            }
            fn evidence(&self, visit: &mut dyn FnMut(&str, EvidenceRef<'_>)) {
                self.0.evidence(visit)
            }
            fn prepared(&self) -> Option<&PreparedRule> {
                Some(&self.2)
            }
        }
        let all_bytes: String = (0u8..0x80).map(char::from).collect();
        for text in ["", "plain", all_bytes.as_str(), "Ωmega \"q\" \\"] {
            let finding = finding(text);
            let names: Vec<&str> = finding.evidence.0.iter().map(|(n, _)| &**n).collect();
            let json = prepare(&RuleShape {
                rule: &finding.rule,
                severity: finding.severity,
                key_start: ["k", ":"],
                evidence: &names,
            });
            let mut mine = Vec::new();
            write_finding(&Prepared(&finding, text, json), None, &mut mine);
            assert_eq!(
                String::from_utf8(mine).unwrap(),
                serde_json::to_string(&finding).unwrap()
            );
        }
    }

    #[test]
    fn findings_are_written_exactly_as_serde_writes_them() {
        let all_bytes: String = (0u8..0x80).map(char::from).collect();
        for text in [
            "",
            "plain",
            all_bytes.as_str(),
            "\"quoted\" \\ back\\slash",
            "Ωmega ǅ 🎉 \u{2028}\u{7f}",
            "<script>alert(1)</script>",
        ] {
            let mut finding = finding(text);
            for line in [Some(7), None] {
                finding.line = line;
                let mut mine = Vec::new();
                write_finding(&finding, None, &mut mine);
                assert_eq!(
                    String::from_utf8(mine).unwrap(),
                    serde_json::to_string(&finding).unwrap()
                );
                for status in Status::ALL {
                    let mut mine = Vec::new();
                    write_finding(&finding, Some(status), &mut mine);
                    let serde = serde_json::to_string(&FindingWithStatus {
                        finding: &finding,
                        status,
                    });
                    assert_eq!(String::from_utf8(mine).unwrap(), serde.unwrap());
                }
            }
        }
    }
}
