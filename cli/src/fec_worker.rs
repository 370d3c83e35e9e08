//! Erasure coding in worker processes, so a relay does not keep the codec's
//! tables.
//!
//! reed-solomon-simd builds 8.5 MiB of global multiplication tables the first
//! time a process encodes or decodes a segment and never frees them: in a
//! soak every node that had handled one splitfile stayed 8.5 MiB larger for
//! good. `warren node` therefore installs a [`WorkerPool`] as the process's
//! [`FecBackend`]: each segment is sent to a `warren fec-worker` child over
//! its stdin and the check shards (or the recovered data shards) come back on
//! its stdout. A worker that has been idle for [`IDLE_EXIT`] is stopped, and
//! its memory with it. A worker is our own binary, but its answers are still
//! read with the same bounds as anything from outside.
//!
//! The exchange, all integers little-endian `u32` unless said:
//!
//! ```text
//! request  = op:u8 data_count check_count body
//!   op 1 (encode):  data_count shards
//!   op 2 (recover): n_data n_check (index shard){n_data} (index shard){n_check}
//! response = 0:u8 count (index shard){count}              -- check or restored shards
//!          | 1:u8 kind:u8 a b len message[len]            -- an FecError
//! ```
//!
//! Every shard is [`SHARD_LEN`] bytes; counts are at most [`MAX_SHARDS`].

use std::io::{self, BufReader, BufWriter, Read, Write};
use std::path::PathBuf;
use std::process::{Child, ChildStdin, ChildStdout, Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Condvar, Mutex, MutexGuard, OnceLock};
use std::time::{Duration, Instant};

use warren_crypto::splitfile::fec::{self, FecBackend, FecEncoder, FecError, Restored, SHARD_LEN};

/// Most shards of one kind in a request (a segment has at most 128 data
/// blocks and as many checks; the codec itself goes further).
pub const MAX_SHARDS: usize = 1024;
/// Longest error message a worker may send back.
const MAX_MESSAGE: usize = 1024;
/// A worker left idle this long is stopped.
pub const IDLE_EXIT: Duration = Duration::from_secs(15);

const OP_ENCODE: u8 = 1;
const OP_RECOVER: u8 = 2;
const STATUS_OK: u8 = 0;
const STATUS_ERROR: u8 = 1;

/// One request, as the worker reads it.
#[derive(Debug, PartialEq, Eq)]
pub enum Request {
    Encode {
        check_count: usize,
        data: Vec<Vec<u8>>,
    },
    Recover {
        data_count: usize,
        check_count: usize,
        data: Vec<(usize, Vec<u8>)>,
        check: Vec<(usize, Vec<u8>)>,
    },
}

fn bad(what: &str) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidData, what.to_owned())
}

fn read_u8(input: &mut impl Read) -> io::Result<u8> {
    let mut byte = [0; 1];
    input.read_exact(&mut byte)?;
    Ok(byte[0])
}

fn read_u32(input: &mut impl Read) -> io::Result<u32> {
    let mut bytes = [0; 4];
    input.read_exact(&mut bytes)?;
    Ok(u32::from_le_bytes(bytes))
}

fn read_count(input: &mut impl Read, what: &str) -> io::Result<usize> {
    let count = read_u32(input)? as usize;
    if count > MAX_SHARDS {
        return Err(bad(what));
    }
    Ok(count)
}

fn read_shard(input: &mut impl Read) -> io::Result<Vec<u8>> {
    let mut shard = vec![0; SHARD_LEN];
    input.read_exact(&mut shard)?;
    Ok(shard)
}

fn read_indexed(
    input: &mut impl Read,
    count: usize,
    bound: usize,
) -> io::Result<Vec<(usize, Vec<u8>)>> {
    let mut shards = Vec::with_capacity(count);
    for _ in 0..count {
        let index = read_u32(input)? as usize;
        if index >= bound {
            return Err(bad("shard index beyond its count"));
        }
        shards.push((index, read_shard(input)?));
    }
    Ok(shards)
}

fn write_u32(output: &mut impl Write, value: usize) -> io::Result<()> {
    let value = u32::try_from(value).map_err(|_| bad("count too large"))?;
    output.write_all(&value.to_le_bytes())
}

fn write_indexed<'a>(
    output: &mut impl Write,
    shards: impl ExactSizeIterator<Item = (usize, &'a [u8])>,
) -> io::Result<()> {
    write_u32(output, shards.len())?;
    for (index, shard) in shards {
        if shard.len() != SHARD_LEN {
            return Err(bad("a shard is not one block payload long"));
        }
        write_u32(output, index)?;
        output.write_all(shard)?;
    }
    Ok(())
}

/// Reads one request; `None` at a clean end of input (the parent is done).
pub fn read_request(input: &mut impl Read) -> io::Result<Option<Request>> {
    let mut op = [0; 1];
    if input.read(&mut op)? == 0 {
        return Ok(None);
    }
    let data_count = read_count(input, "too many data shards")?;
    let check_count = read_count(input, "too many check shards")?;
    if data_count == 0 || check_count == 0 {
        return Err(bad("a segment needs data and check shards"));
    }
    match op[0] {
        OP_ENCODE => {
            let data = (0..data_count)
                .map(|_| read_shard(input))
                .collect::<io::Result<_>>()?;
            Ok(Some(Request::Encode { check_count, data }))
        }
        OP_RECOVER => {
            let have_data = read_count(input, "too many data shards")?;
            let have_check = read_count(input, "too many check shards")?;
            if have_data > data_count || have_check > check_count {
                return Err(bad("more shards than the segment has"));
            }
            let data = read_indexed(input, have_data, data_count)?;
            let check = read_indexed(input, have_check, check_count)?;
            Ok(Some(Request::Recover {
                data_count,
                check_count,
                data,
                check,
            }))
        }
        _ => Err(bad("unknown request")),
    }
}

fn write_encode(output: &mut impl Write, data: &[&[u8]], check_count: usize) -> io::Result<()> {
    output.write_all(&[OP_ENCODE])?;
    write_u32(output, data.len())?;
    write_u32(output, check_count)?;
    for shard in data {
        if shard.len() != SHARD_LEN {
            return Err(bad("a shard is not one block payload long"));
        }
        output.write_all(shard)?;
    }
    output.flush()
}

fn write_recover(
    output: &mut impl Write,
    data_count: usize,
    check_count: usize,
    data: &[(usize, &[u8])],
    check: &[(usize, &[u8])],
) -> io::Result<()> {
    output.write_all(&[OP_RECOVER])?;
    write_u32(output, data_count)?;
    write_u32(output, check_count)?;
    write_u32(output, data.len())?;
    write_u32(output, check.len())?;
    for &(index, shard) in data.iter().chain(check) {
        if shard.len() != SHARD_LEN {
            return Err(bad("a shard is not one block payload long"));
        }
        write_u32(output, index)?;
        output.write_all(shard)?;
    }
    output.flush()
}

/// Writes the worker's answer to one request.
pub fn write_response(
    output: &mut impl Write,
    result: &Result<Vec<(usize, Vec<u8>)>, FecError>,
) -> io::Result<()> {
    match result {
        Ok(shards) => {
            output.write_all(&[STATUS_OK])?;
            write_indexed(output, shards.iter().map(|(i, s)| (*i, s.as_slice())))?;
        }
        Err(err) => {
            let (kind, a, b, message) = match err {
                FecError::UnsupportedCounts { data, check } => (0, *data, *check, String::new()),
                FecError::NotEnoughShards { have, data } => (1, *have, *data, String::new()),
                FecError::Codec(message) => (2, 0, 0, message.clone()),
                other => (2, 0, 0, other.to_string()),
            };
            let message = message.as_bytes();
            let message = &message[..message.len().min(MAX_MESSAGE)];
            output.write_all(&[STATUS_ERROR, kind])?;
            write_u32(output, a)?;
            write_u32(output, b)?;
            write_u32(output, message.len())?;
            output.write_all(message)?;
        }
    }
    output.flush()
}

/// Reads the worker's answer: at most `expected` shards, each index below `bound`.
pub fn read_response(
    input: &mut impl Read,
    expected: usize,
    bound: usize,
) -> io::Result<Result<Restored, FecError>> {
    match read_u8(input)? {
        STATUS_OK => {
            let count = read_count(input, "too many shards in the answer")?;
            if count > expected {
                return Err(bad("more shards in the answer than asked for"));
            }
            Ok(Ok(read_indexed(input, count, bound)?))
        }
        STATUS_ERROR => {
            let kind = read_u8(input)?;
            let a = read_u32(input)? as usize;
            let b = read_u32(input)? as usize;
            let len = read_u32(input)? as usize;
            if len > MAX_MESSAGE {
                return Err(bad("error message too long"));
            }
            let mut message = vec![0; len];
            input.read_exact(&mut message)?;
            Ok(Err(match kind {
                0 => FecError::UnsupportedCounts { data: a, check: b },
                1 => FecError::NotEnoughShards { have: a, data: b },
                _ => FecError::Codec(String::from_utf8_lossy(&message).into_owned()),
            }))
        }
        _ => Err(bad("unknown answer")),
    }
}

/// The worker: answers requests from `input` on `output` until `input` ends.
pub fn serve(input: impl Read, output: impl Write) -> io::Result<()> {
    let mut input = BufReader::with_capacity(SHARD_LEN, input);
    let mut output = BufWriter::with_capacity(SHARD_LEN, output);
    let mut encoder = FecEncoder::default();
    while let Some(request) = read_request(&mut input)? {
        let result = match request {
            Request::Encode { check_count, data } => {
                let mut checks = Vec::with_capacity(check_count);
                encoder
                    .encode_here(data.iter().map(Vec::as_slice), check_count, |check| {
                        checks.push((checks.len(), check.to_vec()));
                    })
                    .map(|()| checks)
            }
            Request::Recover {
                data_count,
                check_count,
                data,
                check,
            } => {
                let data: Vec<_> = data.iter().map(|(i, s)| (*i, s.as_slice())).collect();
                let check: Vec<_> = check.iter().map(|(i, s)| (*i, s.as_slice())).collect();
                fec::recover_here(data_count, check_count, &data, &check)
            }
        };
        write_response(&mut output, &result)?;
    }
    Ok(())
}

/// `warren fec-worker`: serve the parent node on stdin/stdout.
pub fn run() -> anyhow::Result<()> {
    serve(io::stdin().lock(), io::stdout().lock())?;
    Ok(())
}

struct Worker {
    child: Child,
    input: BufWriter<ChildStdin>,
    output: BufReader<ChildStdout>,
    last_used: Instant,
}

impl Drop for Worker {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

#[derive(Default)]
struct PoolState {
    idle: Vec<Worker>,
    busy: usize,
}

/// Worker processes for the node's erasure coding: at most `max_workers` at
/// once, each stopped after [`IDLE_EXIT`] without work.
pub struct WorkerPool {
    exe: PathBuf,
    max_workers: usize,
    state: Mutex<PoolState>,
    freed: Condvar,
    warned: AtomicBool,
}

impl std::fmt::Debug for WorkerPool {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("WorkerPool")
            .field("exe", &self.exe)
            .field("max_workers", &self.max_workers)
            .field("workers", &self.workers())
            .finish_non_exhaustive()
    }
}

impl WorkerPool {
    /// A pool that starts `exe fec-worker` on demand.
    pub fn new(exe: PathBuf, max_workers: usize) -> WorkerPool {
        WorkerPool {
            exe,
            max_workers: max_workers.max(1),
            state: Mutex::new(PoolState::default()),
            freed: Condvar::new(),
            warned: AtomicBool::new(false),
        }
    }

    fn lock(&self) -> MutexGuard<'_, PoolState> {
        self.state
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    fn spawn(&self) -> io::Result<Worker> {
        let mut child = Command::new(&self.exe)
            .arg("fec-worker")
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()?;
        let (Some(input), Some(output)) = (child.stdin.take(), child.stdout.take()) else {
            let _ = child.kill();
            let _ = child.wait();
            return Err(io::Error::other("worker started without pipes"));
        };
        Ok(Worker {
            child,
            input: BufWriter::with_capacity(SHARD_LEN, input),
            output: BufReader::with_capacity(SHARD_LEN, output),
            last_used: Instant::now(),
        })
    }

    /// Takes an idle worker or a slot for a new one (`None`), waiting while
    /// every worker is busy.
    fn take(&self) -> Option<Worker> {
        let mut state = self.lock();
        loop {
            if let Some(worker) = state.idle.pop() {
                state.busy += 1;
                return Some(worker);
            }
            if state.busy + state.idle.len() < self.max_workers {
                state.busy += 1;
                return None;
            }
            state = self
                .freed
                .wait(state)
                .unwrap_or_else(std::sync::PoisonError::into_inner);
        }
    }

    fn give_back(&self, worker: Option<Worker>) {
        let mut state = self.lock();
        state.busy -= 1;
        if let Some(mut worker) = worker {
            worker.last_used = Instant::now();
            state.idle.push(worker);
        }
        drop(state);
        self.freed.notify_one();
    }

    /// Stops the workers idle for longer than `idle_for`.
    pub fn reap(&self, idle_for: Duration) {
        let stale: Vec<Worker> = {
            let mut state = self.lock();
            let (stale, keep) = std::mem::take(&mut state.idle)
                .into_iter()
                .partition(|worker| worker.last_used.elapsed() >= idle_for);
            state.idle = keep;
            stale
        };
        // Killed and reaped outside the lock.
        drop(stale);
    }

    /// Worker processes alive now.
    pub fn workers(&self) -> usize {
        let state = self.lock();
        state.busy + state.idle.len()
    }

    /// Runs one exchange on a worker, retrying once on a fresh worker if the
    /// first one fails; falls back to this process only if no worker starts.
    fn call(
        &self,
        send: &dyn Fn(&mut BufWriter<ChildStdin>) -> io::Result<()>,
        expected: usize,
        bound: usize,
        here: &dyn Fn() -> Result<Vec<(usize, Vec<u8>)>, FecError>,
    ) -> Result<Vec<(usize, Vec<u8>)>, FecError> {
        let mut last_failure = None;
        for _attempt in 0..2 {
            let worker = match self.take() {
                Some(worker) => Ok(worker),
                None => self.spawn(),
            };
            let mut worker = match worker {
                Ok(worker) => worker,
                Err(err) => {
                    self.give_back(None);
                    if !self.warned.swap(true, Ordering::Relaxed) {
                        tracing::warn!(
                            "cannot start an erasure-code worker ({err}); coding in the node process"
                        );
                    }
                    return here();
                }
            };
            let answer = send(&mut worker.input)
                .and_then(|()| read_response(&mut worker.output, expected, bound));
            match answer {
                Ok(result) => {
                    self.give_back(Some(worker));
                    return result;
                }
                Err(err) => {
                    drop(worker);
                    self.give_back(None);
                    last_failure = Some(err);
                }
            }
        }
        Err(FecError::Codec(format!(
            "the erasure-code worker process failed: {}",
            last_failure.map_or_else(String::new, |err| err.to_string())
        )))
    }
}

impl FecBackend for WorkerPool {
    fn encode(&self, data: &[&[u8]], check_count: usize) -> Result<Vec<Vec<u8>>, FecError> {
        let here = || {
            let mut checks = Vec::new();
            FecEncoder::default()
                .encode_here(data.iter().copied(), check_count, |check| {
                    checks.push((checks.len(), check.to_vec()));
                })
                .map(|()| checks)
        };
        let checks = self.call(
            &|input| write_encode(input, data, check_count),
            check_count,
            check_count,
            &here,
        )?;
        // The code gives every check shard, in order.
        if checks.len() != check_count || checks.iter().enumerate().any(|(i, (at, _))| i != *at) {
            return Err(FecError::Codec(
                "the erasure-code worker answered with the wrong check shards".into(),
            ));
        }
        Ok(checks.into_iter().map(|(_, shard)| shard).collect())
    }

    fn recover(
        &self,
        data_count: usize,
        check_count: usize,
        data: &[(usize, &[u8])],
        check: &[(usize, &[u8])],
    ) -> Result<Vec<(usize, Vec<u8>)>, FecError> {
        let missing = data_count.saturating_sub(data.len());
        self.call(
            &|input| write_recover(input, data_count, check_count, data, check),
            missing,
            data_count,
            &|| fec::recover_here(data_count, check_count, data, check),
        )
    }
}

/// `WARREN_FEC_WORKERS`: most worker processes at once (default: the number
/// of cores, at least 2); `0` codes in the node process (the codec's tables
/// then stay in its memory).
pub const WORKERS_ENV: &str = "WARREN_FEC_WORKERS";

/// [`install`], unless [`WORKERS_ENV`] says `0`; an unreadable value is
/// logged and the default used.
pub fn install_from_env() {
    let cores = std::thread::available_parallelism().map_or(2, usize::from);
    let default = cores.max(2);
    let workers = std::env::var(WORKERS_ENV).map_or(default, |value| {
        value.trim().parse::<usize>().unwrap_or_else(|_| {
            tracing::warn!("{WORKERS_ENV}={value:?} is not a number; using {default}");
            default
        })
    });
    if workers > 0 {
        install(workers);
    }
}

/// Runs this process's erasure coding in up to `max_workers` `warren
/// fec-worker` children from now on. Returns the pool; a second call
/// returns the first pool.
pub fn install(max_workers: usize) -> &'static WorkerPool {
    static POOL: OnceLock<&'static WorkerPool> = OnceLock::new();
    POOL.get_or_init(|| {
        // /proc/self/exe still names this binary if the file was replaced
        // (an upgrade while the node runs).
        let exe = if cfg!(target_os = "linux") {
            PathBuf::from("/proc/self/exe")
        } else {
            std::env::current_exe().unwrap_or_else(|_| PathBuf::from("warren"))
        };
        let pool: &'static WorkerPool = Box::leak(Box::new(WorkerPool::new(exe, max_workers)));
        fec::install_backend(pool);
        let reaper = std::thread::Builder::new()
            .name("fec-reaper".into())
            .spawn(move || loop {
                std::thread::sleep(IDLE_EXIT / 3);
                pool.reap(IDLE_EXIT);
            });
        if let Err(err) = reaper {
            tracing::warn!("cannot start the erasure-code worker reaper: {err}");
        }
        pool
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn shard(seed: u8) -> Vec<u8> {
        (0..SHARD_LEN)
            .map(|i| (i as u8).wrapping_mul(7) ^ seed)
            .collect()
    }

    fn answer(request: &[u8]) -> Vec<u8> {
        let mut out = Vec::new();
        serve(request, &mut out).unwrap();
        out
    }

    #[test]
    fn encode_and_recover_through_the_wire_match_the_codec() {
        let data: Vec<Vec<u8>> = (0..4).map(shard).collect();
        let refs: Vec<&[u8]> = data.iter().map(Vec::as_slice).collect();
        let mut request = Vec::new();
        write_encode(&mut request, &refs, 4).unwrap();
        let reply = answer(&request);
        let checks = read_response(&mut reply.as_slice(), 4, 4).unwrap().unwrap();
        let mut expected = Vec::new();
        FecEncoder::default()
            .encode_here(refs.iter().copied(), 4, |c| expected.push(c.to_vec()))
            .unwrap();
        assert_eq!(
            checks.iter().map(|(_, s)| s.clone()).collect::<Vec<_>>(),
            expected
        );

        // Lose data 1 and 3; recover them from data 0, 2 and checks 0, 3.
        let kept_data = [(0, refs[0]), (2, refs[2])];
        let kept_check = [(0, expected[0].as_slice()), (3, expected[3].as_slice())];
        let mut request = Vec::new();
        write_recover(&mut request, 4, 4, &kept_data, &kept_check).unwrap();
        let reply = answer(&request);
        let restored = read_response(&mut reply.as_slice(), 2, 4).unwrap().unwrap();
        assert_eq!(restored, vec![(1, data[1].clone()), (3, data[3].clone())]);
    }

    #[test]
    fn codec_errors_cross_the_wire_as_themselves() {
        for err in [
            FecError::UnsupportedCounts {
                data: 9,
                check: 70000,
            },
            FecError::NotEnoughShards { have: 3, data: 8 },
            FecError::Codec("odd".into()),
        ] {
            let mut out = Vec::new();
            write_response(&mut out, &Err(err.clone())).unwrap();
            assert_eq!(read_response(&mut out.as_slice(), 1, 1).unwrap(), Err(err));
        }
    }

    #[test]
    fn oversized_or_inconsistent_requests_are_refused_before_reading_shards() {
        let mut too_many = vec![OP_ENCODE];
        too_many.extend_from_slice(&(MAX_SHARDS as u32 + 1).to_le_bytes());
        too_many.extend_from_slice(&1u32.to_le_bytes());
        assert!(read_request(&mut too_many.as_slice()).is_err());

        let mut beyond = vec![OP_RECOVER];
        for n in [2u32, 2, 1, 0, 5] {
            beyond.extend_from_slice(&n.to_le_bytes());
        }
        beyond.extend_from_slice(&shard(0));
        assert!(read_request(&mut beyond.as_slice()).is_err());
        // An answer with more shards than asked for is refused too.
        let mut out = Vec::new();
        write_response(&mut out, &Ok(vec![(0, shard(1)), (1, shard(2))])).unwrap();
        assert!(read_response(&mut out.as_slice(), 1, 2).is_err());
    }

    #[test]
    fn a_pool_whose_worker_cannot_start_codes_in_this_process() {
        let pool = WorkerPool::new(PathBuf::from("/nonexistent/warren"), 2);
        let data: Vec<Vec<u8>> = (0..3).map(shard).collect();
        let refs: Vec<&[u8]> = data.iter().map(Vec::as_slice).collect();
        let checks = FecBackend::encode(&pool, &refs, 3).unwrap();
        let mut expected = Vec::new();
        FecEncoder::default()
            .encode_here(refs.iter().copied(), 3, |c| expected.push(c.to_vec()))
            .unwrap();
        assert_eq!(checks, expected);
        assert_eq!(pool.workers(), 0);
    }

    #[test]
    fn a_worker_that_answers_nonsense_is_an_error_not_a_crash() {
        // `true` exits at once: every exchange ends early, both attempts fail.
        let pool = WorkerPool::new(PathBuf::from("/bin/true"), 1);
        let data = [shard(0)];
        let refs: Vec<&[u8]> = data.iter().map(Vec::as_slice).collect();
        let err = FecBackend::encode(&pool, &refs, 1).unwrap_err();
        assert!(err.to_string().contains("worker process failed"), "{err}");
        assert_eq!(pool.workers(), 0);
    }

    proptest! {
        #[test]
        fn any_bytes_to_the_worker_end_in_an_answer_or_an_error(bytes in proptest::collection::vec(any::<u8>(), 0..256)) {
            let mut out = Vec::new();
            let _ = serve(bytes.as_slice(), &mut out);
        }

        #[test]
        fn any_bytes_as_an_answer_are_read_or_refused(bytes in proptest::collection::vec(any::<u8>(), 0..256)) {
            let _ = read_response(&mut bytes.as_slice(), 4, 4);
        }
    }
}
