//! The raw TCP baseline of the mesh benchmarks: an echo server and a
//! windowed client speaking length-prefixed frames over plain std
//! sockets, between namespaces of a [`NetBed`].

use crate::netbed::NetBed;
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::sync::{Arc, Condvar, Mutex};
use std::time::Instant;

#[derive(Debug, Clone, Copy, Default)]
pub struct Figures {
    pub fps: f64,
    pub mbps: f64,
    pub p50_us: u64,
    pub p99_us: u64,
}

/// Echo every frame back on `addr` inside host `h`, one thread per connection.
pub fn server(bed: &NetBed, h: usize, addr: SocketAddr) {
    let listener = bed.in_ns(h, || TcpListener::bind(addr).expect("bind raw echo"));
    std::thread::spawn(move || {
        for conn in listener.incoming().flatten() {
            std::thread::spawn(move || {
                let _ = conn.set_nodelay(true);
                let (mut rd, mut wr) = (std::io::BufReader::with_capacity(64 << 10, conn.try_clone().expect("clone")), conn);
                let mut buf = vec![0u8; 1 << 20];
                loop {
                    let mut h = [0u8; 4];
                    if rd.read_exact(&mut h).is_err() {
                        return;
                    }
                    let len = (u32::from_be_bytes(h) as usize).min(buf.len());
                    if rd.read_exact(&mut buf[..len]).is_err() || wr.write_all(&h).is_err() || wr.write_all(&buf[..len]).is_err() {
                        return;
                    }
                }
            });
        }
    });
}

/// `count` frames of `size` bytes from host `h` to `to`, at most
/// `in_flight` unanswered: a writer thread and this thread reading echoes.
pub fn client(bed: &NetBed, h: usize, to: SocketAddr, count: u64, size: usize, in_flight: u64) -> Figures {
    let conn = bed.in_ns(h, move || TcpStream::connect(to).expect("connect raw echo"));
    conn.set_nodelay(true).expect("nodelay");
    let gate = Arc::new((Mutex::new(in_flight), Condvar::new()));
    let clock = Instant::now();
    let started = Instant::now();
    let writer = {
        let (gate, mut wr) = (gate.clone(), conn.try_clone().expect("clone"));
        std::thread::spawn(move || {
            let mut frame = vec![0u8; 4 + size.max(8)];
            frame[..4].copy_from_slice(&(size.max(8) as u32).to_be_bytes());
            for _ in 0..count {
                let (lock, cv) = &*gate;
                let mut room = lock.lock().unwrap_or_else(|p| p.into_inner());
                while *room == 0 {
                    room = cv.wait(room).unwrap_or_else(|p| p.into_inner());
                }
                *room -= 1;
                drop(room);
                frame[4..12].copy_from_slice(&(clock.elapsed().as_nanos() as u64).to_le_bytes());
                wr.write_all(&frame).expect("raw write");
            }
        })
    };
    let mut rd = std::io::BufReader::with_capacity(64 << 10, conn);
    let mut buf = vec![0u8; size.max(8)];
    let mut rtts = Vec::with_capacity(count as usize);
    for _ in 0..count {
        let mut h = [0u8; 4];
        rd.read_exact(&mut h).expect("raw read");
        rd.read_exact(&mut buf).expect("raw read");
        let sent = u64::from_le_bytes(buf[..8].try_into().unwrap_or([0; 8]));
        rtts.push((clock.elapsed().as_nanos() as u64).saturating_sub(sent) / 1000);
        let (lock, cv) = &*gate;
        *lock.lock().unwrap_or_else(|p| p.into_inner()) += 1;
        cv.notify_one();
    }
    let secs = started.elapsed().as_secs_f64();
    let _ = writer.join();
    rtts.sort_unstable();
    let q = |p: f64| rtts[((rtts.len() - 1) as f64 * p) as usize];
    Figures { fps: count as f64 / secs, mbps: count as f64 * size as f64 / secs / 1e6, p50_us: q(0.5), p99_us: q(0.99) }
}
