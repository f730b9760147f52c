//! kmod's binary index (`modules.*.bin`): a Patricia trie over 7-bit ASCII keys whose nodes
//! hold prioritised values, written exactly as kmod 30's depmod writes it (children before
//! their parent — post-order — and the root offset patched into the header).
//!
//! File layout (`libkmod/libkmod-index.c`): `be32 0xB007F457`, `be32 0x00020001`, `be32 root`;
//! each node is `[prefix\0]` `[u8 first, u8 last, be32 child[last-first+1]]`
//! `[be32 count, (be32 priority, value\0)*]`, and a node's offset carries flags in its high
//! bits: 0x80000000 prefix, 0x40000000 values, 0x20000000 children.

use crate::error::{Error, Result};

const MAGIC: u32 = 0xB007_F457;
const VERSION: u32 = 0x0002_0001;
const FLAG_PREFIX: u32 = 0x8000_0000;
const FLAG_VALUES: u32 = 0x4000_0000;
const FLAG_CHILDREN: u32 = 0x2000_0000;

#[derive(Debug, Default)]
struct Node {
    prefix: Vec<u8>,
    /// (priority, value), kept sorted by priority; a new value goes before equal ones.
    values: Vec<(u32, Vec<u8>)>,
    /// (character, node index), sorted by character.
    children: Vec<(u8, usize)>,
}

/// An index being built.
#[derive(Debug)]
pub struct Index {
    name: &'static str,
    nodes: Vec<Node>,
}

impl Index {
    /// An empty index; `name` (e.g. `modules.alias.bin`) is used in errors.
    pub fn new(name: &'static str) -> Index {
        Index { name, nodes: vec![Node::default()] }
    }

    fn check(&self, text: &[u8]) -> Result<()> {
        if text.iter().any(|&b| b >= 128) {
            return Err(Error::NotAscii {
                index: self.name,
                key: String::from_utf8_lossy(text).into_owned(),
            });
        }
        Ok(())
    }

    /// Adds `value` under `key` with `priority`, as kmod's `index_insert`. Returns whether the
    /// key already held the same value.
    pub fn insert(&mut self, key: &[u8], value: &[u8], priority: u32) -> Result<bool> {
        self.check(key)?;
        self.check(value)?;
        // kmod treats both as C strings.
        let key = elf_cstr(key);
        let value = elf_cstr(value).to_vec();
        let mut node = 0;
        let mut i = 0;
        loop {
            let prefix_len = self.nodes[node].prefix.len();
            let mismatch = (0..prefix_len).find(|&j| key.get(i + j) != Some(&self.nodes[node].prefix[j]));
            if let Some(j) = mismatch {
                // Split: the node keeps prefix[..j]; a new child at prefix[j] takes the rest.
                let old = std::mem::take(&mut self.nodes[node]);
                let ch = old.prefix[j];
                let mut prefix = old.prefix;
                let tail = prefix.split_off(j + 1);
                prefix.truncate(j);
                let child = self.nodes.len();
                self.nodes.push(Node { prefix: tail, values: old.values, children: old.children });
                self.nodes[node] = Node { prefix, values: Vec::new(), children: vec![(ch, child)] };
            }
            i += mismatch.unwrap_or(prefix_len);
            let Some(&ch) = key.get(i) else {
                return Ok(add_value(&mut self.nodes[node].values, value, priority));
            };
            match self.nodes[node].children.binary_search_by_key(&ch, |&(c, _)| c) {
                Ok(found) => {
                    node = self.nodes[node].children[found].1;
                    i += 1;
                }
                Err(at) => {
                    let child = self.nodes.len();
                    self.nodes.push(Node {
                        prefix: key[i + 1..].to_vec(),
                        values: vec![(priority, value)],
                        children: Vec::new(),
                    });
                    self.nodes[node].children.insert(at, (ch, child));
                    return Ok(false);
                }
            }
        }
    }

    /// The index file's bytes.
    pub fn to_bytes(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(64 * self.nodes.len() + 12);
        out.extend_from_slice(&MAGIC.to_be_bytes());
        out.extend_from_slice(&VERSION.to_be_bytes());
        out.extend_from_slice(&[0; 4]);
        let root = self.write_node(0, &mut out);
        out[8..12].copy_from_slice(&root.to_be_bytes());
        out
    }

    fn write_node(&self, index: usize, out: &mut Vec<u8>) -> u32 {
        let node = &self.nodes[index];
        let mut child_offsets = Vec::new();
        if let (Some(&(first, _)), Some(&(last, _))) = (node.children.first(), node.children.last()) {
            child_offsets = vec![0u32; usize::from(last - first) + 1];
            for &(ch, child) in &node.children {
                child_offsets[usize::from(ch - first)] = self.write_node(child, out);
            }
        }
        let mut offset = out.len() as u32;
        if !node.prefix.is_empty() {
            out.extend_from_slice(&node.prefix);
            out.push(0);
            offset |= FLAG_PREFIX;
        }
        if let (Some(&(first, _)), Some(&(last, _))) = (node.children.first(), node.children.last()) {
            out.push(first);
            out.push(last);
            for child in child_offsets {
                out.extend_from_slice(&child.to_be_bytes());
            }
            offset |= FLAG_CHILDREN;
        }
        if !node.values.is_empty() {
            out.extend_from_slice(&(node.values.len() as u32).to_be_bytes());
            for (priority, value) in &node.values {
                out.extend_from_slice(&priority.to_be_bytes());
                out.extend_from_slice(value);
                out.push(0);
            }
            offset |= FLAG_VALUES;
        }
        offset
    }
}

fn elf_cstr(bytes: &[u8]) -> &[u8] {
    crate::elf::c_str(bytes)
}

fn add_value(values: &mut Vec<(u32, Vec<u8>)>, value: Vec<u8>, priority: u32) -> bool {
    let duplicate = values.iter().any(|(_, v)| *v == value);
    let at = values.iter().position(|&(p, _)| p >= priority).unwrap_or(values.len());
    values.insert(at, (priority, value));
    duplicate
}

/// A reader for the index format, for tests and inspection: exact lookup of a key.
pub fn lookup(bytes: &[u8], key: &[u8]) -> Option<Vec<(u32, Vec<u8>)>> {
    let be32 = |at: usize| -> Option<u32> {
        Some(u32::from_be_bytes(bytes.get(at..at.checked_add(4)?)?.try_into().ok()?))
    };
    if be32(0)? != MAGIC || be32(4)? != VERSION {
        return None;
    }
    let mut offset = be32(8)?;
    let mut i = 0;
    loop {
        let mut at = (offset & 0x0fff_ffff) as usize;
        if offset & FLAG_PREFIX != 0 {
            let prefix = crate::elf::c_str(bytes.get(at..)?);
            if key.get(i..i + prefix.len())? != prefix {
                return None;
            }
            i += prefix.len();
            at += prefix.len() + 1;
        }
        let mut children = None;
        if offset & FLAG_CHILDREN != 0 {
            let (first, last) = (*bytes.get(at)?, *bytes.get(at + 1)?);
            children = Some((first, last, at + 2));
            at += 2 + 4 * (usize::from(last.checked_sub(first)?) + 1);
        }
        if i == key.len() {
            if offset & FLAG_VALUES == 0 {
                return Some(Vec::new());
            }
            let count = be32(at)? as usize;
            at += 4;
            let mut values = Vec::new();
            for _ in 0..count {
                let priority = be32(at)?;
                let value = crate::elf::c_str(bytes.get(at + 4..)?).to_vec();
                at += 4 + value.len() + 1;
                values.push((priority, value));
            }
            return Some(values);
        }
        let (first, last, table) = children?;
        let ch = key[i];
        if ch < first || ch > last {
            return None;
        }
        offset = be32(table + 4 * usize::from(ch - first))?;
        if offset == 0 {
            return None;
        }
        i += 1;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn empty_index_is_a_bare_header() {
        let bytes = Index::new("t").to_bytes();
        assert_eq!(bytes, [0xb0, 0x07, 0xf4, 0x57, 0, 2, 0, 1, 0, 0, 0, 12]);
    }

    #[test]
    fn inserted_keys_are_found_with_values_in_priority_order() {
        let mut index = Index::new("t");
        let keys: &[(&str, &str, u32)] = &[
            ("snd_hda", "a", 3),
            ("snd", "b", 1),
            ("snd_hdb", "c", 2),
            ("snd_hda", "d", 1),
            ("snd_hda", "e", 3),
            ("usb", "f", 0),
            ("sn", "g", 0),
        ];
        for (key, value, priority) in keys {
            index.insert(key.as_bytes(), value.as_bytes(), *priority).unwrap();
        }
        let bytes = index.to_bytes();
        let values = |key: &str| {
            lookup(&bytes, key.as_bytes())
                .unwrap_or_default()
                .into_iter()
                .map(|(p, v)| format!("{p}:{}", String::from_utf8(v).unwrap()))
                .collect::<Vec<_>>()
        };
        assert_eq!(values("snd_hda"), ["1:d", "3:e", "3:a"]);
        assert_eq!(values("snd"), ["1:b"]);
        assert_eq!(values("snd_hdb"), ["2:c"]);
        assert_eq!(values("sn"), ["0:g"]);
        assert_eq!(values("usb"), ["0:f"]);
        assert!(values("snd_h").is_empty());
        assert!(values("x").is_empty());
    }

    #[test]
    fn refuses_non_ascii() {
        assert!(Index::new("t").insert("é".as_bytes(), b"v", 0).is_err());
    }
}
