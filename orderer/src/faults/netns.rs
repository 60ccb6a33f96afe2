//! The fault tests' network: one Linux network namespace per orderer, all
//! joined by a bridge that lives in a namespace of its own, and one veth from
//! the harness's namespace to that bridge (the clients' and the checker's
//! address). Every packet stays inside namespaces this harness made.
//!
//! Faults are iptables rules inside the node namespaces; they name node
//! addresses only, so the harness's own traffic (clients, metrics) is never
//! cut.

use std::process::Command;

use thiserror::Error;

/// Every namespace and link this harness makes starts with this prefix, so a
/// run can remove what an earlier, interrupted run left behind.
const PREFIX: &str = "bftf";
/// The test subnet: the harness is .1, node `id` is .(10 + id).
const SUBNET: &str = "10.77.0";
/// Nodes one fault-test network holds, at most.
const NODES_MAX: usize = 16;

#[derive(Debug, Error)]
pub enum NetnsError {
    #[error(
        "cannot run `{command}`: {detail}. The fault tests need root, iproute2 and iptables (apt-get install iproute2 iptables) and a kernel that allows network namespaces; deploy/faults/run.sh installs the tools when they are missing"
    )]
    Command { command: String, detail: String },
    #[error("at most {NODES_MAX} nodes fit the fault-test network, {0} asked")]
    TooManyNodes(usize),
}

fn run(args: &[&str]) -> Result<(), NetnsError> {
    let command = args.join(" ");
    let out = Command::new(args[0])
        .args(&args[1..])
        .output()
        .map_err(|e| NetnsError::Command { command: command.clone(), detail: e.to_string() })?;
    if out.status.success() {
        Ok(())
    } else {
        Err(NetnsError::Command { command, detail: String::from_utf8_lossy(&out.stderr).trim().to_string() })
    }
}

/// The namespaces and addresses of one fault-test network.
#[derive(Debug)]
pub struct Topology {
    nodes: usize,
}

impl Topology {
    /// The harness's own address on the test network.
    pub fn harness_ip() -> String {
        format!("{SUBNET}.1")
    }

    /// Node `id`'s address (1-based ids).
    pub fn node_ip(id: usize) -> String {
        format!("{SUBNET}.{}", 10 + id)
    }

    /// Node `id`'s namespace.
    pub fn node_ns(id: usize) -> String {
        format!("{PREFIX}-n{id}")
    }

    fn hub_ns() -> String {
        format!("{PREFIX}-hub")
    }

    fn harness_link() -> String {
        format!("{PREFIX}-h0")
    }

    /// Removes whatever an earlier run left (namespaces and the harness's
    /// link with this harness's prefix). Errors are ignored: nothing may be
    /// there.
    pub fn remove_leftovers() {
        let _ = run(&["ip", "link", "del", &Self::harness_link()]);
        if let Ok(out) = Command::new("ip").args(["netns", "list"]).output() {
            for line in String::from_utf8_lossy(&out.stdout).lines() {
                let name = line.split_whitespace().next().unwrap_or("");
                if name.starts_with(&format!("{PREFIX}-")) {
                    let _ = run(&["ip", "netns", "del", name]);
                }
            }
        }
    }

    /// Builds the network for `nodes` orderers.
    pub fn create(nodes: usize) -> Result<Self, NetnsError> {
        if nodes > NODES_MAX {
            return Err(NetnsError::TooManyNodes(nodes));
        }
        Self::remove_leftovers();
        let topology = Topology { nodes };
        let hub = Self::hub_ns();
        run(&["ip", "netns", "add", &hub])?;
        run(&["ip", "-n", &hub, "link", "add", "br0", "type", "bridge"])?;
        run(&["ip", "-n", &hub, "link", "set", "br0", "up"])?;
        let h0 = Self::harness_link();
        run(&["ip", "link", "add", &h0, "type", "veth", "peer", "name", "h0", "netns", &hub])?;
        run(&["ip", "-n", &hub, "link", "set", "h0", "master", "br0", "up"])?;
        run(&["ip", "addr", "add", &format!("{}/24", Self::harness_ip()), "dev", &h0])?;
        run(&["ip", "link", "set", &h0, "up"])?;
        for id in 1..=nodes {
            let ns = Self::node_ns(id);
            let port = format!("p{id}");
            run(&["ip", "netns", "add", &ns])?;
            run(&["ip", "-n", &ns, "link", "set", "lo", "up"])?;
            run(&["ip", "-n", &ns, "link", "add", "eth0", "type", "veth", "peer", "name", &port, "netns", &hub])?;
            run(&["ip", "-n", &hub, "link", "set", &port, "master", "br0", "up"])?;
            run(&["ip", "-n", &ns, "addr", "add", &format!("{}/24", Self::node_ip(id)), "dev", "eth0"])?;
            run(&["ip", "-n", &ns, "link", "set", "eth0", "up"])?;
            // Proves iptables works in the namespace before any fault needs it.
            run(&["ip", "netns", "exec", &ns, "iptables", "-F"])?;
        }
        Ok(topology)
    }

    pub fn nodes(&self) -> usize {
        self.nodes
    }

    /// Cuts every packet between `a` and `b`, both ways (rules in `a`'s
    /// namespace).
    pub fn cut(&self, a: usize, b: usize) -> Result<(), NetnsError> {
        let ns = Self::node_ns(a);
        let peer = Self::node_ip(b);
        run(&["ip", "netns", "exec", &ns, "iptables", "-A", "INPUT", "-s", &peer, "-j", "DROP"])?;
        run(&["ip", "netns", "exec", &ns, "iptables", "-A", "OUTPUT", "-d", &peer, "-j", "DROP"])
    }

    /// Drops what `from` sends to `to` on its own cluster link, one way: each
    /// node sends on the connection it dialled, so dropping `from`'s packets
    /// to `to`'s cluster port loses `from`'s messages to `to` while `to`'s
    /// messages to `from` still arrive.
    pub fn drop_one_way(&self, from: usize, to: usize, cluster_port: u16) -> Result<(), NetnsError> {
        let ns = Self::node_ns(from);
        let peer = Self::node_ip(to);
        let port = cluster_port.to_string();
        run(&[
            "ip", "netns", "exec", &ns, "iptables", "-A", "OUTPUT", "-d", &peer, "-p", "tcp", "--dport", &port, "-j",
            "DROP",
        ])
    }

    /// Removes every rule: the network is whole again.
    pub fn heal(&self) -> Result<(), NetnsError> {
        for id in 1..=self.nodes {
            run(&["ip", "netns", "exec", &Self::node_ns(id), "iptables", "-F"])?;
        }
        Ok(())
    }

    /// The command prefix that runs a program inside node `id`'s namespace.
    pub fn exec_prefix(id: usize) -> Vec<String> {
        vec!["ip".into(), "netns".into(), "exec".into(), Self::node_ns(id)]
    }
}

impl Drop for Topology {
    fn drop(&mut self) {
        Self::remove_leftovers();
    }
}
