//! Another process's CPU time (user + system), from `/proc/PID/stat`: how
//! the fan-out engine measures what its deliveries cost the server.

use std::time::Duration;

use anyhow::Context as _;

/// Clock ticks per second, the unit of `/proc/PID/stat`'s times. Asked of
/// `getconf CLK_TCK` once (reading `sysconf` directly would need unsafe
/// code, which the workspace forbids); 100, Linux's usual value, if that fails.
fn ticks_per_second() -> u64 {
    std::process::Command::new("getconf")
        .arg("CLK_TCK")
        .output()
        .ok()
        .and_then(|out| String::from_utf8(out.stdout).ok())
        .and_then(|text| text.trim().parse().ok())
        .filter(|&ticks| ticks > 0)
        .unwrap_or(100)
}

/// Reads the CPU time of one process; knows its clock tick.
#[derive(Debug, Clone, Copy)]
pub struct CpuClock {
    pid: u32,
    ticks_per_second: u64,
}

impl CpuClock {
    /// A clock for process `pid`.
    ///
    /// # Errors
    ///
    /// When the process cannot be read (no such process, not Linux).
    pub fn new(pid: u32) -> anyhow::Result<Self> {
        let clock = CpuClock {
            pid,
            ticks_per_second: ticks_per_second(),
        };
        clock.now()?;
        Ok(clock)
    }

    /// The process's utime + stime so far. Its resolution is one clock
    /// tick (10 ms at 100 ticks/s): measure spans of many ticks.
    ///
    /// # Errors
    ///
    /// When `/proc/PID/stat` cannot be read or parsed.
    pub fn now(&self) -> anyhow::Result<Duration> {
        let path = format!("/proc/{}/stat", self.pid);
        let stat = std::fs::read_to_string(&path).with_context(|| format!("reading {path}"))?;
        let ticks = parse_ticks(&stat).with_context(|| format!("parsing {path}"))?;
        Ok(Duration::from_secs_f64(
            ticks as f64 / self.ticks_per_second as f64,
        ))
    }
}

/// utime + stime (fields 14 and 15) of a `/proc/PID/stat` line. The
/// command name, field 2, may hold spaces and parentheses: count from the last `)`.
fn parse_ticks(stat: &str) -> Option<u64> {
    let after_name = &stat[stat.rfind(')')? + 1..];
    let mut fields = after_name.split_whitespace().skip(11);
    let utime: u64 = fields.next()?.parse().ok()?;
    let stime: u64 = fields.next()?.parse().ok()?;
    Some(utime + stime)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn user_and_system_ticks_are_added_even_with_odd_command_names() {
        let stat = "42 (a (b) c) S 1 42 42 0 -1 4194304 100 0 0 0 17 5 0 0 20 0 1 0 9 0 0";
        assert_eq!(parse_ticks(stat), Some(22));
    }

    #[test]
    fn this_process_has_a_cpu_time() {
        let clock = CpuClock::new(std::process::id()).unwrap();
        assert!(clock.now().is_ok());
    }
}
