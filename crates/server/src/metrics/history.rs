//! The kept collections of every node, bounded per node, and their Graphite lines.
//! Names are shared between a node's collections while they stay the same, so a
//! collection costs little more than its values.

use std::collections::{HashMap, HashSet, VecDeque};
use std::sync::{Arc, Mutex};

use super::points::Points;

#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct NodeKey {
    pub instance: String,
    pub node: i64,
}

/// One collection of one node.
#[derive(Clone)]
pub struct Sample {
    /// Seconds since the Unix epoch.
    pub at: i64,
    names: Arc<[String]>,
    values: Box<[i64]>,
}

impl Sample {
    pub fn get(&self, name: &str) -> Option<i64> {
        self.names.iter().position(|n| n == name).map(|i| self.values[i])
    }

    pub fn points(&self) -> impl Iterator<Item = (&str, i64)> {
        self.names.iter().map(String::as_str).zip(self.values.iter().copied())
    }
}

struct NodeHistory {
    namespace: String,
    samples: VecDeque<Sample>,
}

pub struct History {
    capacity: usize,
    nodes: Mutex<HashMap<NodeKey, NodeHistory>>,
}

impl History {
    pub fn new(capacity: usize) -> Self {
        Self { capacity, nodes: Mutex::new(HashMap::new()) }
    }

    /// Adds a collection, dropping the oldest beyond the capacity.
    pub fn record(&self, key: NodeKey, namespace: String, at: i64, points: Points) {
        if self.capacity == 0 {
            return;
        }
        let mut nodes = self.nodes.lock().unwrap_or_else(|e| e.into_inner());
        let node =
            nodes.entry(key).or_insert_with(|| NodeHistory { namespace: String::new(), samples: VecDeque::new() });
        node.namespace = namespace;
        let (names, values): (Vec<String>, Vec<i64>) = points.into_iter().unzip();
        let names = match node.samples.back() {
            Some(last) if *last.names == names[..] => last.names.clone(),
            _ => Arc::from(names),
        };
        while node.samples.len() >= self.capacity {
            node.samples.pop_front();
        }
        node.samples.push_back(Sample { at, names, values: values.into_boxed_slice() });
    }

    /// Forgets the nodes not in `live` (deprovisioned instances).
    pub fn retain(&self, live: &HashSet<NodeKey>) {
        self.nodes.lock().unwrap_or_else(|e| e.into_inner()).retain(|key, _| live.contains(key));
    }

    /// The node indexes with collections for an instance, in order.
    pub fn nodes(&self, instance: &str) -> Vec<i64> {
        let nodes = self.nodes.lock().unwrap_or_else(|e| e.into_inner());
        let mut indexes: Vec<i64> = nodes.keys().filter(|k| k.instance == instance).map(|k| k.node).collect();
        indexes.sort_unstable();
        indexes
    }

    /// The newest `quantity` collections of a node (all kept when `None`), oldest first.
    pub fn samples(&self, instance: &str, node: i64, quantity: Option<usize>) -> Vec<Sample> {
        let nodes = self.nodes.lock().unwrap_or_else(|e| e.into_inner());
        let Some(history) = nodes.get(&NodeKey { instance: instance.to_owned(), node }) else {
            return Vec::new();
        };
        let skip = quantity.map_or(0, |q| history.samples.len().saturating_sub(q));
        history.samples.iter().skip(skip).cloned().collect()
    }

    /// At most `at_most` collections of a node spread evenly over the kept window,
    /// oldest first, always with the newest two (for a page's charts: they need no
    /// more points than they can draw, and a copy of a whole day is costly).
    pub fn sampled(&self, instance: &str, node: i64, at_most: usize) -> Vec<Sample> {
        let nodes = self.nodes.lock().unwrap_or_else(|e| e.into_inner());
        let Some(history) = nodes.get(&NodeKey { instance: instance.to_owned(), node }) else {
            return Vec::new();
        };
        let len = history.samples.len();
        let step = len.div_ceil(at_most.max(2)).max(1);
        let mut picked: Vec<usize> = (0..len.saturating_sub(2)).step_by(step).collect();
        picked.extend(len.saturating_sub(2)..len);
        picked.into_iter().map(|i| history.samples[i].clone()).collect()
    }

    /// Graphite lines (`<namespace>.<type>.<specific> <value> <timestamp>`) of the
    /// newest `quantity` collections of every node of the instance: node by node,
    /// oldest collection first.
    pub fn lines(&self, instance: &str, quantity: Option<usize>) -> Vec<String> {
        let mut lines = Vec::new();
        for node in self.nodes(instance) {
            let namespace = {
                let nodes = self.nodes.lock().unwrap_or_else(|e| e.into_inner());
                match nodes.get(&NodeKey { instance: instance.to_owned(), node }) {
                    Some(h) => h.namespace.clone(),
                    None => continue,
                }
            };
            for sample in self.samples(instance, node, quantity) {
                lines.extend(sample.points().map(|(name, value)| format!("{namespace}.{name} {value} {}", sample.at)));
            }
        }
        lines
    }
}

/// Graphite lines of one collection.
pub fn graphite_lines(namespace: &str, at: i64, points: &Points) -> String {
    use std::fmt::Write;
    let mut text = String::with_capacity(points.len() * 80);
    for (name, value) in points {
        let _ = writeln!(text, "{namespace}.{name} {value} {at}");
    }
    text
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(node: i64) -> NodeKey {
        NodeKey { instance: "i".into(), node }
    }

    #[test]
    fn keeps_the_newest_collections_up_to_its_capacity() {
        let history = History::new(3);
        for at in 1..=5 {
            history.record(key(0), "ns.0".into(), at, vec![("system.load.load1".into(), at * 10)]);
        }
        history.record(key(1), "ns.1".into(), 5, vec![("system.load.load1".into(), 7)]);
        let kept: Vec<i64> = history.samples("i", 0, None).iter().map(|s| s.at).collect();
        assert_eq!(kept, [3, 4, 5]);
        assert_eq!(history.lines("i", Some(1)), ["ns.0.system.load.load1 50 5", "ns.1.system.load.load1 7 5"]);
        assert_eq!(history.lines("i", Some(2)).len(), 3);
        let spread = History::new(1000);
        for at in 0..1000 {
            spread.record(key(0), "ns.0".into(), at, vec![("x".into(), at)]);
        }
        let picked: Vec<i64> = spread.sampled("i", 0, 100).iter().map(|s| s.at).collect();
        assert!(picked.len() <= 102 && picked.len() >= 50, "{}", picked.len());
        assert_eq!((picked[0], &picked[picked.len() - 2..]), (0, &[998, 999][..]));
        assert!(picked.windows(2).all(|w| w[0] < w[1]));
        history.retain(&HashSet::from([key(1)]));
        assert_eq!(history.nodes("i"), [1]);
    }
}
