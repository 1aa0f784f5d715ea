//! Replays real editing traces (`../shared/traces`) through the agent's OT document and prints
//! ops/s, peak memory and ratios against a plain rope in the same process.
//!
//! ```sh
//! cargo bench -p huddle-agent --bench trace_replay
//! ```
//!
//! Each trace is measured, every figure the median of `RUNS` runs over the whole trace:
//!
//! - **rope**: the patches applied straight to a `ropey::Rope` (remove + insert): the baseline,
//!   the "plain rope ~23 ms" anchor of the traces' README;
//! - **op build + apply**: each patch built as a `TextOperation` (retain, delete, insert,
//!   retain) and applied to a rope;
//! - **Document::receive**: the server path: one client, `seq` increasing, `base_rev` the
//!   current revision (no transforms); the final text must equal `endContent`;
//! - **room core**: what the room task does per op besides the socket: parse the client's JSON
//!   message, decode the op, `receive`, record it in the open document (`OpenDoc::applied`), and
//!   encode the broadcast once;
//! - **10 clients**: the same patches dealt round-robin to ten `Client` state machines whose
//!   view of the server lags by 0–10 revisions, so the server transforms almost every op.
//!   The server's arrival log is recorded, then replayed (timed) into a fresh `Document`.
//!   The clients type at positions of their own stale views, so the result is not
//!   `endContent`; what is checked is that the server and all ten clients end equal.
//!
//! Peak memory is VmHWM (peak resident set) of fresh child processes that load the trace and
//! then replay it (or not): see `memory_figures`.

use anyhow::{Context as _, Result, bail, ensure};
use flate2::read::GzDecoder;
use huddle_agent::ot::{AppliedOp, Client, ClientId, Document, Outcome, Submission, TextOperation};
use huddle_agent::room::docs::OpenDoc;
use huddle_protocol::messages::{ClientMessage, ServerMessage};
use ropey::Rope;
use serde::Deserialize;
use std::collections::VecDeque;
use std::hint::black_box;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

/// Runs per measurement; the median is reported.
const RUNS: usize = 5;
/// Simulated clients in the concurrent variant.
const CLIENTS: usize = 10;
/// Most revisions a client's view lags behind the server's.
const MAX_LAG: usize = 10;
/// The issue's target through the full server path, on one core.
const TARGET_OPS_PER_SEC: f64 = 2_000_000.0;

const TRACES: [&str; 2] = ["automerge-paper.json.gz", "seph-blog1.json.gz"];

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct Trace {
    start_content: String,
    end_content: String,
    txns: Vec<Txn>,
}

#[derive(Deserialize)]
struct Txn {
    patches: Vec<(usize, usize, String)>,
}

/// One edit: at code point `pos`, delete `del` code points, then insert `ins`.
struct Patch {
    pos: usize,
    del: usize,
    ins: String,
    /// Document length (code points) before the patch, so building its op needs no rope.
    len_before: usize,
}

fn traces_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../shared/traces")
}

fn load(name: &str) -> Result<(Trace, Vec<Patch>)> {
    let path = traces_dir().join(name);
    let file = std::fs::File::open(&path).with_context(|| format!("opening {}", path.display()))?;
    let trace: Trace = serde_json::from_reader(std::io::BufReader::new(GzDecoder::new(file)))
        .with_context(|| format!("parsing {}", path.display()))?;
    let mut len = trace.start_content.chars().count();
    let mut patches = Vec::new();
    for txn in &trace.txns {
        for (pos, del, ins) in &txn.patches {
            ensure!(
                pos + del <= len,
                "{name}: patch past the end of the document"
            );
            patches.push(Patch {
                pos: *pos,
                del: *del,
                ins: ins.clone(),
                len_before: len,
            });
            len = len - del + ins.chars().count();
        }
    }
    Ok((trace, patches))
}

/// The patch as an operation over a document of `len` code points.
fn build_op(pos: usize, del: usize, ins: &str, len: usize) -> TextOperation {
    let mut op = TextOperation::new();
    op.retain(pos)
        .delete(del)
        .insert(ins)
        .retain(len - pos - del);
    op
}

fn patch_op(p: &Patch) -> TextOperation {
    build_op(p.pos, p.del, &p.ins, p.len_before)
}

fn median(mut xs: Vec<Duration>) -> Duration {
    xs.sort();
    xs[xs.len() / 2]
}

/// Runs `f` `RUNS` times; `prepare` builds its untimed input each time. Returns the median.
fn measure<I, O>(mut prepare: impl FnMut() -> I, mut f: impl FnMut(I) -> O) -> Duration {
    let times = (0..RUNS)
        .map(|_| {
            let input = prepare();
            let start = Instant::now();
            black_box(f(input));
            start.elapsed()
        })
        .collect();
    median(times)
}

fn rope_replay(patches: &[Patch]) -> Rope {
    let mut rope = Rope::new();
    for p in patches {
        if p.del > 0 {
            rope.remove(p.pos..p.pos + p.del);
        }
        if !p.ins.is_empty() {
            rope.insert(p.pos, &p.ins);
        }
    }
    rope
}

fn op_replay(patches: &[Patch]) -> Result<Rope> {
    let mut rope = Rope::new();
    for p in patches {
        patch_op(p).apply(&mut rope)?;
    }
    Ok(rope)
}

fn document_replay(ops: Vec<TextOperation>) -> Result<Document> {
    let client = ClientId::from("solo");
    let mut doc = Document::new("");
    for (seq, op) in (1..).zip(ops) {
        let rev = doc.rev();
        doc.receive(&client, seq, rev, op)?;
    }
    Ok(doc)
}

/// The room task's per-op work minus the socket: parse, decode, receive, record, encode.
fn room_core_replay(messages: &[String]) -> Result<usize> {
    let mut doc = OpenDoc::new(String::new());
    let mut out_bytes = 0;
    for text in messages {
        let Ok(ClientMessage::Op {
            file,
            base_rev,
            seq,
            op,
        }) = ClientMessage::parse(text)
        else {
            bail!("not an op message: {text}");
        };
        let op: TextOperation = serde_json::from_value(op)?;
        let client = ClientId::from("solo");
        let Outcome::Applied {
            rev,
            op_transformed,
        } = doc.doc.receive(&client, seq, base_rev, op)?
        else {
            bail!("op {seq} was a duplicate");
        };
        doc.applied(Instant::now());
        let message = ServerMessage::Op {
            file,
            rev,
            client_id: client.0,
            seq,
            op: serde_json::to_value(&op_transformed)?,
        };
        out_bytes += serde_json::to_string(&message)?.len();
    }
    Ok(out_bytes)
}

/// Small deterministic generator (xorshift64*) for the simulated network delays.
struct Rng(u64);

impl Rng {
    fn below(&mut self, n: usize) -> usize {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        (self.0.wrapping_mul(0x2545_F491_4F6C_DD1D) >> 33) as usize % n
    }
}

/// The outcome of the ten-client simulation: what reached the server, in arrival order.
struct Concurrent {
    arrivals: Vec<Submission>,
    final_text: String,
    transforms: u64,
}

/// Deals the patches round-robin to `CLIENTS` clients. Before each of its edits a client sees
/// the server's broadcasts only up to a random 0..=`MAX_LAG` revisions ago; its edit lands at
/// the trace's position clamped to its own (stale) text. Submissions reach the server at once.
fn simulate_concurrent(patches: &[Patch]) -> Result<Concurrent> {
    let mut server = Document::new("");
    let mut log: Vec<AppliedOp> = Vec::new();
    let mut clients: Vec<(Client, usize)> = (0..CLIENTS)
        .map(|i| (Client::new(ClientId(format!("c{i}")), 0, ""), 0))
        .collect();
    let mut inbox: VecDeque<Submission> = VecDeque::new();
    let mut arrivals = Vec::new();
    let mut transforms = 0u64;
    let mut rng = Rng(0x9E37_79B9_7F4A_7C15);

    let mut serve = |inbox: &mut VecDeque<Submission>, log: &mut Vec<AppliedOp>| -> Result<()> {
        while let Some(sub) = inbox.pop_front() {
            transforms += server.rev() - sub.base_rev;
            let outcome = server.receive(&sub.client_id, sub.seq, sub.base_rev, sub.op.clone())?;
            let Outcome::Applied {
                rev,
                op_transformed,
            } = outcome
            else {
                bail!("unexpected duplicate");
            };
            log.push(AppliedOp {
                rev,
                client_id: sub.client_id.clone(),
                seq: sub.seq,
                op: op_transformed,
            });
            arrivals.push(sub);
        }
        Ok(())
    };

    for (i, p) in patches.iter().enumerate() {
        let (client, seen) = &mut clients[i % CLIENTS];
        let upto = log.len().saturating_sub(rng.below(MAX_LAG + 1)).max(*seen);
        for applied in &log[*seen..upto] {
            inbox.extend(client.apply_server(applied)?);
        }
        *seen = upto;
        let len = client.text().len_chars();
        let pos = p.pos.min(len);
        let del = p.del.min(len - pos);
        inbox.extend(client.apply_local(build_op(pos, del, &p.ins, len))?);
        serve(&mut inbox, &mut log)?;
    }
    // Quiet period: everything is delivered until every client is acknowledged.
    loop {
        let mut progressed = false;
        for (client, seen) in &mut clients {
            for applied in &log[*seen..] {
                inbox.extend(client.apply_server(applied)?);
                progressed = true;
            }
            *seen = log.len();
        }
        serve(&mut inbox, &mut log)?;
        if !progressed {
            break;
        }
    }
    let final_text = server.text().to_string();
    for (client, _) in &clients {
        ensure!(
            client.text() == final_text.as_str() && client.checksum() == server.checksum(),
            "client {} diverged from the server",
            client.id()
        );
    }
    Ok(Concurrent {
        arrivals,
        final_text,
        transforms,
    })
}

fn concurrent_replay(arrivals: Vec<Submission>) -> Result<Document> {
    let mut doc = Document::new("");
    for sub in arrivals {
        doc.receive(&sub.client_id, sub.seq, sub.base_rev, sub.op)?;
    }
    Ok(doc)
}

fn status_kib(field: &str) -> Option<u64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find(|l| l.starts_with(field))?;
    line.split_whitespace().nth(1)?.parse().ok()
}

fn mib(kib: u64) -> f64 {
    kib as f64 / 1024.0
}

fn ops_per_sec(n: usize, d: Duration) -> f64 {
    n as f64 / d.as_secs_f64()
}

fn row(what: &str, n: usize, d: Duration, baseline: Duration) {
    println!(
        "  {what:<34} {:>9.2} ms  {:>6.2} M ops/s  {:>5.2}x rope time",
        d.as_secs_f64() * 1e3,
        ops_per_sec(n, d) / 1e6,
        d.as_secs_f64() / baseline.as_secs_f64()
    );
}

fn bench(name: &str) -> Result<()> {
    let (trace, patches) = load(name)?;
    ensure!(
        trace.start_content.is_empty(),
        "{name}: expected an empty start"
    );
    let n = patches.len();
    let inserts = patches.iter().filter(|p| !p.ins.is_empty()).count();
    println!(
        "{name}: {n} patches ({inserts} with an insert), final length {} code points",
        trace.end_content.chars().count()
    );

    // Correctness first, untimed: every path must reproduce endContent exactly.
    ensure!(
        rope_replay(&patches) == trace.end_content.as_str(),
        "{name}: rope replay differs from endContent"
    );
    ensure!(
        op_replay(&patches)? == trace.end_content.as_str(),
        "{name}: op replay differs from endContent"
    );
    let doc = document_replay(patches.iter().map(patch_op).collect())?;
    if doc.text() != trace.end_content.as_str() {
        bail!("{name}: Document::receive replay differs from endContent");
    }

    let rope = measure(|| (), |()| rope_replay(&patches));
    let build = measure(|| (), |()| patches.iter().map(patch_op).collect::<Vec<_>>());
    let op_apply = measure(|| (), |()| op_replay(&patches));
    let receive = measure(
        || patches.iter().map(patch_op).collect::<Vec<_>>(),
        document_replay,
    );
    let messages: Vec<String> = (1u64..)
        .zip(&patches)
        .map(|(seq, p)| {
            let message = ClientMessage::Op {
                file: "paper.tex".into(),
                base_rev: seq - 1,
                seq,
                op: serde_json::to_value(patch_op(p))?,
            };
            Ok(serde_json::to_string(&message)?)
        })
        .collect::<Result<_>>()?;
    let room_core = measure(|| (), |()| room_core_replay(&messages));
    drop(messages);

    let memory = memory_figures(name)?;

    // Ten clients.
    let concurrent = simulate_concurrent(&patches)?;
    let server_ops = concurrent.arrivals.len();
    let replayed = concurrent_replay(concurrent.arrivals.clone())?;
    ensure!(
        replayed.text() == concurrent.final_text.as_str(),
        "{name}: replaying the arrival log does not reproduce the simulation"
    );
    let ten = measure(|| concurrent.arrivals.clone(), concurrent_replay);
    let sim_start = Instant::now();
    let sim_check = simulate_concurrent(&patches)?;
    let sim = sim_start.elapsed();
    ensure!(
        sim_check.final_text == concurrent.final_text,
        "{name}: simulation is not deterministic"
    );

    println!("  median of {RUNS} runs each; ratios against the plain rope in this process");
    row("rope remove+insert (baseline)", n, rope, rope);
    row("TextOperation build only", n, build, rope);
    row("TextOperation build + apply", n, op_apply, rope);
    row("Document::receive, 1 client", n, receive, rope);
    row("room core (JSON in, receive, out)", n, room_core, rope);
    row(
        &format!("Document::receive, {CLIENTS} clients"),
        server_ops,
        ten,
        rope,
    );
    let single_rate = ops_per_sec(n, receive);
    let ten_rate = ops_per_sec(server_ops, ten);
    println!(
        "  {CLIENTS} clients: {server_ops} server ops for {n} keystroke patches (buffered edits \
         compose), {:.1} transforms per op, {:.2} M keystrokes/s; server ops/s = {:.2}x the \
         1-client path; whole simulation incl. clients {:.0} ms; final text {} code points \
         (not endContent by design: clients type into stale views), server and all clients equal",
        concurrent.transforms as f64 / server_ops as f64,
        ops_per_sec(n, ten) / 1e6,
        ten_rate / single_rate,
        sim.as_secs_f64() * 1e3,
        concurrent.final_text.chars().count()
    );
    let [load, rope_peak, doc_peak] = memory;
    println!(
        "  peak memory (VmHWM, fresh process each): loading the trace {:.1} MiB; + rope replay \
         {:.1} MiB (+{:.1}); + Document::receive replay {:.1} MiB (+{:.1}, {:.2}x the rope's)",
        mib(load),
        mib(rope_peak),
        mib(rope_peak.saturating_sub(load)),
        mib(doc_peak),
        mib(doc_peak.saturating_sub(load)),
        doc_peak.saturating_sub(load) as f64 / rope_peak.saturating_sub(load).max(1) as f64
    );
    println!(
        "  target {:.0} M ops/s through Document::receive on one core: {} ({:.2} M ops/s)",
        TARGET_OPS_PER_SEC / 1e6,
        if single_rate >= TARGET_OPS_PER_SEC {
            "MET"
        } else {
            "NOT MET"
        },
        single_rate / 1e6
    );
    println!();
    Ok(())
}

/// Set in a child process that measures one replay's peak memory (see [`memory_figures`]).
const MEMORY_CHILD: &str = "TRACE_REPLAY_MEMORY_CHILD";

/// Peak resident memory (KiB) of three fresh processes that load `name` and then do nothing,
/// replay it on a rope, or replay it through `Document::receive` (ops built one at a time, as a
/// server receives them). A fresh process each, because the allocator keeps freed memory
/// resident: after the timed runs a replay would only reuse it and not move the peak.
fn memory_figures(name: &str) -> Result<[u64; 3]> {
    let exe = std::env::current_exe()?;
    let mut out = [0; 3];
    for (slot, mode) in out.iter_mut().zip(["load", "rope", "document"]) {
        let child = std::process::Command::new(&exe)
            .env(MEMORY_CHILD, format!("{mode}:{name}"))
            .output()?;
        ensure!(
            child.status.success(),
            "memory child {mode} failed: {child:?}"
        );
        *slot = String::from_utf8(child.stdout)?.trim().parse()?;
    }
    Ok(out)
}

fn memory_child(spec: &str) -> Result<()> {
    let (mode, name) = spec.split_once(':').context("mode:trace")?;
    let (trace, patches) = load(name)?;
    let ok = match mode {
        "load" => true,
        "rope" => rope_replay(&patches) == trace.end_content.as_str(),
        "document" => {
            let client = ClientId::from("solo");
            let mut doc = Document::new("");
            for (seq, p) in (1..).zip(&patches) {
                let rev = doc.rev();
                doc.receive(&client, seq, rev, patch_op(p))?;
            }
            doc.text() == trace.end_content.as_str()
        }
        _ => bail!("unknown mode {mode}"),
    };
    ensure!(ok, "{mode} replay of {name} differs from endContent");
    println!("{}", status_kib("VmHWM:").context("no VmHWM")?);
    Ok(())
}

fn main() -> Result<()> {
    if let Ok(spec) = std::env::var(MEMORY_CHILD) {
        return memory_child(&spec);
    }
    // `cargo bench` passes `--bench`; a name filter selects traces.
    let filter: Vec<String> = std::env::args()
        .skip(1)
        .filter(|a| !a.starts_with("--"))
        .collect();
    for name in TRACES {
        if filter.is_empty() || filter.iter().any(|f| name.contains(f.as_str())) {
            bench(name)?;
        }
    }
    Ok(())
}
