//! The canonical byte layout's primitives: big-endian integers, 32-byte
//! ids, 64-byte signatures and length-prefixed fields with a maximum each.
//! One encoding per value (no maps, no optional padding), so what a node
//! signs is exactly what every other node re-encodes and checks.

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum WireError {
    #[error("truncated: {0} is cut short")]
    Truncated(&'static str),
    #[error("{field} is {len} long; at most {max}")]
    TooLong { field: &'static str, len: usize, max: usize },
    #[error("{0} bytes after the message")]
    Trailing(usize),
    #[error("unknown message type {0}")]
    UnknownType(u8),
    #[error("unsupported version {0}")]
    BadVersion(u8),
    #[error("invalid {0}")]
    Invalid(&'static str),
}

#[derive(Debug, Default, Clone)]
pub struct Writer(pub Vec<u8>);

impl Writer {
    pub fn with_capacity(n: usize) -> Writer {
        Writer(Vec::with_capacity(n))
    }
    pub fn u8(&mut self, v: u8) -> &mut Self {
        self.0.push(v);
        self
    }
    pub fn u16(&mut self, v: u16) -> &mut Self {
        self.0.extend_from_slice(&v.to_be_bytes());
        self
    }
    pub fn u32(&mut self, v: u32) -> &mut Self {
        self.0.extend_from_slice(&v.to_be_bytes());
        self
    }
    pub fn u64(&mut self, v: u64) -> &mut Self {
        self.0.extend_from_slice(&v.to_be_bytes());
        self
    }
    pub fn raw(&mut self, v: &[u8]) -> &mut Self {
        self.0.extend_from_slice(v);
        self
    }
    /// A field of up to 255 bytes.
    pub fn short(&mut self, v: &[u8]) -> &mut Self {
        debug_assert!(v.len() <= 255);
        self.u8(v.len().min(255) as u8).raw(&v[..v.len().min(255)])
    }
    /// A field of up to 4 GiB (callers bound it far lower).
    pub fn long(&mut self, v: &[u8]) -> &mut Self {
        self.u32(v.len() as u32).raw(v)
    }
    /// A list of up to 255 ids.
    pub fn ids(&mut self, ids: &[[u8; 32]]) -> &mut Self {
        self.u8(ids.len().min(255) as u8);
        for id in ids.iter().take(255) {
            self.raw(id);
        }
        self
    }
}

#[derive(Debug)]
pub struct Reader<'a> {
    buf: &'a [u8],
    pos: usize,
}

impl<'a> Reader<'a> {
    pub fn new(buf: &'a [u8]) -> Reader<'a> {
        Reader { buf, pos: 0 }
    }
    pub fn pos(&self) -> usize {
        self.pos
    }
    pub fn take(&mut self, n: usize, what: &'static str) -> Result<&'a [u8], WireError> {
        let end = self.pos.checked_add(n).filter(|e| *e <= self.buf.len()).ok_or(WireError::Truncated(what))?;
        let s = &self.buf[self.pos..end];
        self.pos = end;
        Ok(s)
    }
    pub fn u8(&mut self, what: &'static str) -> Result<u8, WireError> {
        Ok(self.take(1, what)?[0])
    }
    pub fn u16(&mut self, what: &'static str) -> Result<u16, WireError> {
        let b = self.take(2, what)?;
        Ok(u16::from_be_bytes([b[0], b[1]]))
    }
    pub fn u32(&mut self, what: &'static str) -> Result<u32, WireError> {
        let b = self.take(4, what)?;
        Ok(u32::from_be_bytes([b[0], b[1], b[2], b[3]]))
    }
    pub fn u64(&mut self, what: &'static str) -> Result<u64, WireError> {
        let mut a = [0u8; 8];
        a.copy_from_slice(self.take(8, what)?);
        Ok(u64::from_be_bytes(a))
    }
    pub fn id(&mut self, what: &'static str) -> Result<[u8; 32], WireError> {
        let mut a = [0u8; 32];
        a.copy_from_slice(self.take(32, what)?);
        Ok(a)
    }
    pub fn sig(&mut self, what: &'static str) -> Result<[u8; 64], WireError> {
        let mut a = [0u8; 64];
        a.copy_from_slice(self.take(64, what)?);
        Ok(a)
    }
    pub fn short(&mut self, what: &'static str, max: usize) -> Result<&'a [u8], WireError> {
        let n = self.u8(what)? as usize;
        if n > max {
            return Err(WireError::TooLong { field: what, len: n, max });
        }
        self.take(n, what)
    }
    pub fn long(&mut self, what: &'static str, max: usize) -> Result<&'a [u8], WireError> {
        let n = self.u32(what)? as usize;
        if n > max {
            return Err(WireError::TooLong { field: what, len: n, max });
        }
        self.take(n, what)
    }
    pub fn ids(&mut self, what: &'static str, max: usize) -> Result<Vec<[u8; 32]>, WireError> {
        let n = self.u8(what)? as usize;
        if n > max {
            return Err(WireError::TooLong { field: what, len: n, max });
        }
        (0..n).map(|_| self.id(what)).collect()
    }
    /// Everything read: anything left over is an error.
    pub fn finish(&self) -> Result<(), WireError> {
        match self.buf.len() - self.pos {
            0 => Ok(()),
            n => Err(WireError::Trailing(n)),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fields_round_trip_and_bounds_hold() {
        let mut w = Writer::default();
        w.u8(7).u16(300).u32(70_000).u64(u64::MAX).short(b"abc").long(b"payload").ids(&[[1; 32], [2; 32]]);
        let mut r = Reader::new(&w.0);
        assert_eq!(r.u8("a"), Ok(7));
        assert_eq!(r.u16("b"), Ok(300));
        assert_eq!(r.u32("c"), Ok(70_000));
        assert_eq!(r.u64("d"), Ok(u64::MAX));
        assert_eq!(r.short("e", 3), Ok(&b"abc"[..]));
        assert_eq!(r.long("f", 6), Err(WireError::TooLong { field: "f", len: 7, max: 6 }));
        let mut r = Reader::new(&w.0[..5]);
        r.u8("a").unwrap();
        assert_eq!(r.u64("x"), Err(WireError::Truncated("x")));
        let r = Reader::new(&[1]);
        assert_eq!(r.finish(), Err(WireError::Trailing(1)));
    }
}
