//! Debian binary packages: the `ar` container, the control fields, the data member.
//!
//! A `.deb` is an `ar` archive of `debian-binary` (`2.0`), `control.tar[.gz|.xz|.zst]` and
//! `data.tar[.gz|.xz|.zst|.bz2]`, in that order (deb(5)). Both tar members are read as streams;
//! nothing of the package is held in memory but its control file.

use std::collections::BTreeMap;
use std::io::{BufRead, BufReader, Read};
use std::path::Path;

use crate::error::{Error, Result};
use crate::extract::{self, Extracted, Options};

/// The first bytes of an `ar` archive.
pub(crate) const AR_MAGIC: &[u8] = b"!<arch>\n";

/// Fields of a package's `control` file (`Package`, `Version`, `Architecture`, …).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Control {
    /// Field name → value, continuation lines joined with `\n`.
    pub fields: BTreeMap<String, String>,
}

impl Control {
    /// Parses a control file (deb-control(5)).
    pub fn parse(text: &str) -> Control {
        let mut fields = BTreeMap::new();
        let mut last: Option<String> = None;
        for line in text.lines() {
            if line.starts_with([' ', '\t']) {
                if let Some(value) = last.as_ref().and_then(|name| fields.get_mut(name)) {
                    let value: &mut String = value;
                    value.push('\n');
                    value.push_str(line.trim());
                }
            } else if let Some((name, value)) = line.split_once(':') {
                fields.insert(name.trim().to_owned(), value.trim().to_owned());
                last = Some(name.trim().to_owned());
            }
        }
        Control { fields }
    }

    /// A field's value.
    pub fn get(&self, name: &str) -> Option<&str> {
        self.fields.get(name).map(String::as_str)
    }
}

/// One member header of an `ar` archive.
struct Member {
    name: String,
    size: u64,
}

/// Reads `ar` members one after another from a stream.
struct Ar<R> {
    reader: R,
    /// Bytes of the current member not read yet, and whether a padding byte follows it.
    remaining: u64,
    padded: bool,
}

impl<R: BufRead> Ar<R> {
    fn new(mut reader: R, archive: &Path) -> Result<Self> {
        let mut magic = [0u8; 8];
        reader.read_exact(&mut magic).map_err(|e| corrupt(archive, &e.to_string()))?;
        if magic != AR_MAGIC {
            return Err(corrupt(archive, "not an ar archive"));
        }
        Ok(Ar { reader, remaining: 0, padded: false })
    }

    /// The next member's header, after skipping what is left of the current one.
    fn next(&mut self, archive: &Path) -> Result<Option<Member>> {
        let skip = self.remaining + u64::from(self.padded);
        std::io::copy(&mut (&mut self.reader).take(skip), &mut std::io::sink())
            .map_err(|e| corrupt(archive, &e.to_string()))?;
        if self.reader.fill_buf().map_err(|e| corrupt(archive, &e.to_string()))?.is_empty() {
            return Ok(None);
        }
        let mut header = [0u8; 60];
        self.reader.read_exact(&mut header).map_err(|_| corrupt(archive, "truncated member header"))?;
        if &header[58..60] != b"`\n" {
            return Err(corrupt(archive, "bad member header"));
        }
        let field = |range: std::ops::Range<usize>| String::from_utf8_lossy(&header[range]).trim().to_owned();
        let name = field(0..16).trim_end_matches('/').to_owned();
        let size: u64 = field(48..58)
            .parse()
            .map_err(|_| corrupt(archive, &format!("bad size in the header of {name}")))?;
        self.remaining = size;
        self.padded = size % 2 == 1;
        Ok(Some(Member { name, size }))
    }

    /// A reader of the current member's content.
    fn content(&mut self) -> MemberReader<'_, R> {
        MemberReader { ar: self }
    }
}

struct MemberReader<'a, R> {
    ar: &'a mut Ar<R>,
}

impl<R: BufRead> Read for MemberReader<'_, R> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        let limit = buf.len().min(usize::try_from(self.ar.remaining).unwrap_or(usize::MAX));
        if limit == 0 {
            return Ok(0);
        }
        let n = self.ar.reader.read(&mut buf[..limit])?;
        if n == 0 {
            return Err(std::io::ErrorKind::UnexpectedEof.into());
        }
        self.ar.remaining -= n as u64;
        Ok(n)
    }
}

fn corrupt(archive: &Path, reason: &str) -> Error {
    Error::CorruptArchive { archive: archive.to_owned(), entry: None, reason: reason.to_owned() }
}

/// Extracts the `data.tar*` member of the package read from `reader` into `root`.
pub(crate) fn extract_data(
    archive: &Path,
    reader: impl BufRead,
    root: &Path,
    options: Options,
) -> Result<Extracted> {
    let mut ar = Ar::new(reader, archive)?;
    while let Some(member) = ar.next(archive)? {
        if member.name.starts_with("data.tar") {
            let content = BufReader::with_capacity(1 << 20, ar.content());
            return extract::extract_tar(&archive.join(&member.name), content, root, options);
        }
        let _ = member.size;
    }
    Err(corrupt(archive, "no data.tar member"))
}

/// Reads the package's control fields.
pub fn control(archive: &Path) -> Result<Control> {
    let file =
        std::fs::File::open(archive).map_err(|source| Error::Read { path: archive.to_owned(), source })?;
    let mut ar = Ar::new(BufReader::new(file), archive)?;
    while let Some(member) = ar.next(archive)? {
        if !member.name.starts_with("control.tar") {
            continue;
        }
        let mut content = BufReader::new(ar.content());
        let head = content.fill_buf().map_err(|e| corrupt(archive, &e.to_string()))?;
        let decoder = extract::Compression::sniff(head)
            .decoder(content)
            .map_err(|e| corrupt(archive, &e.to_string()))?;
        let mut tar = tar::Archive::new(decoder);
        for entry in tar.entries().map_err(|e| corrupt(archive, &e.to_string()))? {
            let mut entry = entry.map_err(|e| corrupt(archive, &e.to_string()))?;
            let path = entry.path_bytes().into_owned();
            if path == b"./control" || path == b"control" {
                let mut text = String::new();
                (&mut entry)
                    .take(1 << 20)
                    .read_to_string(&mut text)
                    .map_err(|e| corrupt(archive, &e.to_string()))?;
                return Ok(Control::parse(&text));
            }
        }
        return Err(corrupt(archive, "no control file in control.tar"));
    }
    Err(corrupt(archive, "no control.tar member"))
}
