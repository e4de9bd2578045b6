//! An append-only file of the run directory (`events.jsonl`, `metrics.csv`) followed as it
//! grows: each new complete line handed over once, a file replaced or shortened (a resumed
//! worker dropping rows) read again from its start.

use std::fs::File;
use std::io::{Read, Seek, SeekFrom};
use std::os::unix::fs::MetadataExt;
use std::path::PathBuf;

/// An append-only file read incrementally, line by line.
#[derive(Debug)]
pub struct FileTail {
    path: PathBuf,
    /// Bytes read so far, including `partial`.
    offset: u64,
    ino: u64,
    /// The start of a line whose end has not been written yet.
    partial: Vec<u8>,
}

impl FileTail {
    pub fn new(path: PathBuf) -> Self {
        Self {
            path,
            offset: 0,
            ino: 0,
            partial: Vec::new(),
        }
    }

    /// The length of the complete lines read so far.
    pub fn consumed(&self) -> u64 {
        self.offset - self.partial.len() as u64
    }

    /// Hands every new complete line over, as [`Tailed::Line`]; a file that was replaced or
    /// shortened since the last look is announced with [`Tailed::Restart`], then handed over
    /// from its start. Returns whether it restarted.
    pub fn poll(&mut self, mut each: impl FnMut(Tailed)) -> bool {
        let Ok(mut file) = File::open(&self.path) else {
            let restart = self.offset > 0;
            if restart {
                each(Tailed::Restart);
            }
            self.offset = 0;
            self.partial.clear();
            return restart;
        };
        let Ok(meta) = file.metadata() else {
            return false;
        };
        let mut restart = false;
        if meta.ino() != self.ino || meta.len() < self.offset {
            restart = self.offset > 0;
            if restart {
                each(Tailed::Restart);
            }
            self.offset = 0;
            self.partial.clear();
            self.ino = meta.ino();
        }
        if meta.len() == self.offset || file.seek(SeekFrom::Start(self.offset)).is_err() {
            return restart;
        }
        let mut buf = vec![0u8; 64 * 1024];
        loop {
            let n = match file.read(&mut buf) {
                Ok(0) | Err(_) => break,
                Ok(n) => n,
            };
            self.offset += n as u64;
            let mut chunk = &buf[..n];
            while let Some(end) = chunk.iter().position(|&b| b == b'\n') {
                if self.partial.is_empty() {
                    each(Tailed::Line(&String::from_utf8_lossy(&chunk[..end])));
                } else {
                    self.partial.extend_from_slice(&chunk[..end]);
                    each(Tailed::Line(&String::from_utf8_lossy(&self.partial)));
                    self.partial.clear();
                }
                chunk = &chunk[end + 1..];
            }
            self.partial.extend_from_slice(chunk);
        }
        restart
    }
}

/// What [`FileTail::poll`] hands over.
pub enum Tailed<'a> {
    /// The file was replaced or shortened: forget what it said; its lines follow again.
    Restart,
    Line(&'a str),
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;

    #[test]
    fn lines_are_read_once_and_partial_lines_wait_for_their_end() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("f");
        let mut file = File::create(&path).unwrap();
        let mut tail = FileTail::new(path.clone());
        let mut seen = Vec::new();
        file.write_all(b"a\nb\nc").unwrap();
        let lines = |t: Tailed, seen: &mut Vec<String>| match t {
            Tailed::Restart => seen.push("<restart>".into()),
            Tailed::Line(l) => seen.push(l.to_string()),
        };
        assert!(!tail.poll(|t| lines(t, &mut seen)));
        assert_eq!(seen, ["a", "b"]);
        file.write_all(b"d\ne\n").unwrap();
        tail.poll(|t| lines(t, &mut seen));
        assert_eq!(seen, ["a", "b", "cd", "e"]);
        assert_eq!(tail.consumed(), 9);
        // Replaced by a shorter file (a resumed worker dropping rows): read from the start.
        let tmp = dir.path().join("g");
        std::fs::write(&tmp, "a\n").unwrap();
        std::fs::rename(&tmp, &path).unwrap();
        seen.clear();
        assert!(tail.poll(|t| lines(t, &mut seen)));
        assert_eq!(seen, ["<restart>", "a"]);
    }
}
