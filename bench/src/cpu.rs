//! CPU per operation, from `/proc/<pid>/stat`: the user and system time of
//! the processes named with `--cpu-pid` (the nodes) and of this client, taken
//! at the start and the end of the workload phase. Linux only; ticks are
//! `sysconf(_SC_CLK_TCK)` (10 ms at the usual 100 Hz: phases of seconds make
//! the error a fraction of a percent).

use anyhow::{bail, Context};
use serde::Serialize;

/// Most `--cpu-pid` processes.
pub const CPU_PIDS_MAX: usize = 16;

/// CPU ticks (user + system) of each watched process and of this one.
#[derive(Debug, Clone)]
pub struct CpuSample {
    nodes: Vec<(u32, String, u64)>,
    client: u64,
    at: std::time::Instant,
}

/// One watched process's share over the phase.
#[derive(Debug, Clone, Serialize)]
pub struct ProcessCpu {
    /// Its pid.
    pub pid: u32,
    /// Its command name (`/proc/<pid>/stat`'s second field).
    pub name: String,
    /// Cores it kept busy on average.
    pub cores: f64,
}

/// The CPU of a phase, per process and per committed operation.
#[derive(Debug, Clone, Serialize)]
pub struct CpuReport {
    /// The watched processes (the nodes).
    pub processes: Vec<ProcessCpu>,
    /// Cores this client kept busy.
    pub client_cores: f64,
    /// The watched processes' CPU per committed operation, in microseconds.
    pub nodes_us_per_op: f64,
    /// The same with the client's CPU added.
    pub total_us_per_op: f64,
}

/// User + system ticks of `/proc/<pid>/stat` (fields 14 and 15), and the
/// command name. The name is in parentheses and may hold spaces: fields are
/// counted after its closing one.
fn ticks_of(pid: &str) -> anyhow::Result<(String, u64)> {
    let path = format!("/proc/{pid}/stat");
    let stat = std::fs::read_to_string(&path).with_context(|| format!("reading {path}"))?;
    let open = stat.find('(').context("no command name in /proc stat")?;
    let close = stat.rfind(')').context("no command name in /proc stat")?;
    let name = stat[open + 1..close].to_owned();
    // After ") ": field 3 (state) is the first; utime is field 14, stime 15.
    let fields: Vec<&str> = stat[close + 1..].split_whitespace().collect();
    let number = |index: usize| -> anyhow::Result<u64> {
        fields
            .get(index)
            .and_then(|field| field.parse().ok())
            .with_context(|| format!("field {} of {path}", index + 3))
    };
    Ok((name, number(11)? + number(12)?))
}

impl CpuSample {
    /// Now, for `pids` and this process.
    pub fn take(pids: &[u32]) -> anyhow::Result<Self> {
        if pids.len() > CPU_PIDS_MAX {
            bail!("at most {CPU_PIDS_MAX} --cpu-pid");
        }
        let nodes = pids
            .iter()
            .map(|&pid| ticks_of(&pid.to_string()).map(|(name, ticks)| (pid, name, ticks)))
            .collect::<anyhow::Result<Vec<_>>>()?;
        let (_, client) = ticks_of("self")?;
        Ok(CpuSample {
            nodes,
            client,
            at: std::time::Instant::now(),
        })
    }

    /// From `self` to `end`, over `operations` committed operations.
    pub fn report(&self, end: &CpuSample, operations: u64) -> CpuReport {
        let tick_s = 1.0 / rustix::param::clock_ticks_per_second() as f64;
        let elapsed_s = end
            .at
            .duration_since(self.at)
            .as_secs_f64()
            .max(f64::EPSILON);
        let seconds = |from: u64, to: u64| to.saturating_sub(from) as f64 * tick_s;
        let processes: Vec<ProcessCpu> = self
            .nodes
            .iter()
            .zip(&end.nodes)
            .map(|((pid, name, from), (_, _, to))| ProcessCpu {
                pid: *pid,
                name: name.clone(),
                cores: seconds(*from, *to) / elapsed_s,
            })
            .collect();
        let nodes_s: f64 = processes.iter().map(|p| p.cores * elapsed_s).sum();
        let client_s = seconds(self.client, end.client);
        let per_op = |s: f64| {
            if operations == 0 {
                0.0
            } else {
                s * 1e6 / operations as f64
            }
        };
        CpuReport {
            processes,
            client_cores: client_s / elapsed_s,
            nodes_us_per_op: per_op(nodes_s),
            total_us_per_op: per_op(nodes_s + client_s),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn this_process_is_sampled_and_burning_cpu_shows() {
        let pid = std::process::id();
        let start = CpuSample::take(&[pid]).expect("this process has a /proc entry");
        let spin_until = std::time::Instant::now() + std::time::Duration::from_millis(300);
        let mut x = 0u64;
        while std::time::Instant::now() < spin_until {
            x = std::hint::black_box(x.wrapping_mul(31).wrapping_add(7));
        }
        let end = CpuSample::take(&[pid]).expect("still here");
        let report = end_report(&start, &end);
        assert_eq!(report.processes.len(), 1);
        assert!(report.processes[0].cores > 0.3, "{report:?}");
        assert!(report.total_us_per_op > report.nodes_us_per_op);
    }

    fn end_report(start: &CpuSample, end: &CpuSample) -> CpuReport {
        start.report(end, 1000)
    }

    #[test]
    fn a_missing_process_is_an_error_naming_it() {
        let error = CpuSample::take(&[u32::MAX]).expect_err("no such pid");
        assert!(format!("{error:#}").contains(&format!("/proc/{}/stat", u32::MAX)));
    }
}
