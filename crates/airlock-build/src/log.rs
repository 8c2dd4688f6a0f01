//! A bounded buffer that keeps the end of a build's output.

/// Most bytes of build output kept (the tail; earlier output is dropped).
pub const MAX_LOG_BYTES: usize = 256 * 1024;

/// Keeps the last `max` bytes written to it.
#[derive(Debug, Clone)]
pub(crate) struct TailBuf {
    max: usize,
    data: Vec<u8>,
    dropped: u64,
}

impl TailBuf {
    /// An empty buffer keeping at most `max` bytes.
    pub(crate) fn new(max: usize) -> Self {
        TailBuf {
            max,
            data: Vec::new(),
            dropped: 0,
        }
    }

    /// Appends bytes, dropping the oldest beyond the bound.
    pub(crate) fn push(&mut self, bytes: &[u8]) {
        self.data.extend_from_slice(bytes);
        if self.data.len() > self.max * 2 {
            self.trim();
        }
    }

    fn trim(&mut self) {
        if self.data.len() > self.max {
            let cut = self.data.len() - self.max;
            self.data.drain(..cut);
            self.dropped += cut as u64;
        }
    }

    /// The kept output as text, with a note when the start was dropped.
    pub(crate) fn into_string(mut self) -> String {
        self.trim();
        let text = String::from_utf8_lossy(&self.data).into_owned();
        if self.dropped > 0 {
            format!("[{} earlier bytes of output dropped]\n{text}", self.dropped)
        } else {
            text
        }
    }
}

/// The last `max_chars` characters of `log` (for error messages).
pub(crate) fn tail(log: &str, max_chars: usize) -> String {
    let count = log.chars().count();
    if count <= max_chars {
        return log.to_string();
    }
    log.chars().skip(count - max_chars).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keeps_only_the_tail_and_says_so() {
        let mut buf = TailBuf::new(10);
        for _ in 0..10 {
            buf.push(b"0123456789");
        }
        buf.push(b"END");
        let text = buf.into_string();
        assert!(text.ends_with("3456789END"), "{text}");
        assert!(text.starts_with("[93 earlier bytes"), "{text}");
    }
}
