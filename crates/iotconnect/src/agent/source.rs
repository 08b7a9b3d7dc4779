//! Where `iotc-send run` gets its data: JSON lines (a file or stdin; each line one `SendData`
//! array), or a simulation that makes values for every attribute of every device from the
//! template (inside each `dv` range, with an optional out-of-range value every N sends). Each
//! source runs as a task feeding a channel, paced by an optional interval.

use std::time::Duration;

use serde_json::{Map, Value};
use tokio::io::{AsyncBufRead, AsyncBufReadExt};
use tokio::sync::mpsc;

use crate::protocol::attributes::{AttributeDef, AttributeGroup, DataType, DvItem, parse_dv};
use crate::protocol::input::{InputError, InputRecord, parse_line};
use crate::protocol::v1::sync::DeviceRef;

/// One item from a source.
#[derive(Debug, Clone, PartialEq)]
pub enum Input {
    /// One `SendData`.
    Records(Vec<InputRecord>),
    /// A line that could not be used.
    Bad(InputError),
    /// A read error.
    Failed(String),
}

/// Reads JSON lines until EOF; waits `interval` between sends.
pub async fn lines<R: AsyncBufRead + Unpin>(
    reader: R,
    interval: Option<Duration>,
    tx: mpsc::Sender<Input>,
) {
    let mut lines = reader.lines();
    let mut n = 0u64;
    let mut first = true;
    loop {
        let line = match lines.next_line().await {
            Ok(Some(l)) => l,
            Ok(None) => return,
            Err(e) => {
                let _ = tx
                    .send(Input::Failed(format!("cannot read input: {e}")))
                    .await;
                return;
            }
        };
        n += 1;
        let item = match parse_line(n, &line) {
            Ok(Some(r)) => Input::Records(r),
            Ok(None) => continue,
            Err(e) => Input::Bad(e),
        };
        if let (Some(i), false) = (interval, first) {
            tokio::time::sleep(i).await;
        }
        first = false;
        if tx.send(item).await.is_err() {
            return;
        }
    }
}

/// Opens an input: a file, or stdin for `-`.
pub async fn open(path: &std::path::Path) -> Result<Box<dyn AsyncBufRead + Unpin + Send>, String> {
    if path.as_os_str() == "-" {
        return Ok(Box::new(tokio::io::BufReader::new(tokio::io::stdin())));
    }
    let f = tokio::fs::File::open(path)
        .await
        .map_err(|e| format!("cannot open input `{}`: {e}", path.display()))?;
    Ok(Box::new(tokio::io::BufReader::new(f)))
}

/// The first `SendData` of a file (or stdin): `iotc-send data --file`.
pub async fn first_records(path: &std::path::Path) -> Result<Vec<InputRecord>, String> {
    let mut lines = open(path).await?.lines();
    let mut n = 0;
    while let Some(line) = lines
        .next_line()
        .await
        .map_err(|e| format!("cannot read `{}`: {e}", path.display()))?
    {
        n += 1;
        if let Some(r) = parse_line(n, &line).map_err(|e| format!("{}: {e}", path.display()))? {
            return Ok(r);
        }
    }
    Err(format!("`{}` holds no SendData line", path.display()))
}

/// What the simulation makes values for: the devices (gateway first) and their attributes, as
/// the agent knows them. In 2.1 they arrive over MQTT after connecting (201, 204) and again after
/// a refresh (ct 101-104), so the agent hands each new catalog to the simulation through a
/// `watch` channel ([`super::RunOptions::catalog`]).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Catalog {
    /// Devices (gateway first).
    pub devices: Vec<DeviceRef>,
    /// Their attributes.
    pub attributes: Vec<AttributeGroup>,
}

/// What the simulation sends.
#[derive(Debug, Clone)]
pub struct Simulation {
    /// Devices (gateway first).
    pub devices: Vec<DeviceRef>,
    /// Their attributes.
    pub attributes: Vec<AttributeGroup>,
    /// Sends (None: until stopped).
    pub count: Option<u64>,
    /// Time between sends.
    pub interval: Duration,
    /// Every Nth send carries one out-of-range value per device (0: never).
    pub faulty_every: u64,
}

fn value_for(def: &AttributeDef, faulty: bool, n: u64) -> Value {
    let dv = parse_dv(def.dv.as_deref());
    match def.dt {
        DataType::Number | DataType::Float => {
            let (lo, hi) = dv
                .iter()
                .find_map(|i| match i {
                    DvItem::Range(a, b) => Some((*a, *b)),
                    DvItem::Exact(_) => None,
                })
                .unwrap_or((0.0, 100.0));
            if faulty {
                return Value::from(hi + 1.0 + (hi - lo).abs());
            }
            if let Some(DvItem::Exact(e)) = dv.iter().find(|i| matches!(i, DvItem::Exact(_)))
                && !dv.iter().any(|i| matches!(i, DvItem::Range(..)))
            {
                return e.parse::<f64>().map_or(Value::Null, Value::from);
            }
            let x = lo + fastrand::f64() * (hi - lo);
            if def.dt == DataType::Number && lo.fract() == 0.0 && hi.fract() == 0.0 {
                Value::from(x.round() as i64)
            } else {
                Value::from((x * 100.0).round() / 100.0)
            }
        }
        DataType::String => match dv.first() {
            _ if faulty && !dv.is_empty() => Value::from("not-in-list"),
            Some(DvItem::Exact(e)) => Value::from(e.trim()),
            _ => Value::from(format!("value-{n}")),
        },
        DataType::Object | DataType::Other(_) => Value::from(n),
    }
}

impl Simulation {
    /// The records of send number `n` (from 1).
    pub fn records(&self, n: u64) -> Vec<InputRecord> {
        let faulty_send = self.faulty_every > 0 && n.is_multiple_of(self.faulty_every);
        self.devices
            .iter()
            .map(|dev| {
                let mut data = Map::new();
                let mut made_faulty = !faulty_send;
                for g in &self.attributes {
                    if g.is_object() {
                        if g.tg != dev.tg {
                            continue;
                        }
                        let mut obj = Map::new();
                        for d in &g.d {
                            obj.insert(d.ln.clone(), value_for(d, false, n));
                        }
                        data.insert(g.p.clone(), Value::Object(obj));
                    } else {
                        for d in g.d.iter().filter(|d| d.tg == dev.tg) {
                            let bad = !made_faulty
                                && (d.dt.is_numeric()
                                    || d.dv.as_deref().is_some_and(|v| !v.trim().is_empty()));
                            made_faulty |= bad;
                            data.insert(d.ln.clone(), value_for(d, bad, n));
                        }
                    }
                }
                InputRecord {
                    unique_id: dev.id.clone(),
                    time: None,
                    data,
                }
            })
            .collect()
    }

    /// Sends until `count` or until the receiver is gone. Waits for the first catalog (2.1:
    /// the attributes and children answers) and makes each send from the latest one.
    pub async fn run(
        mut self,
        tx: mpsc::Sender<Input>,
        mut catalog: tokio::sync::watch::Receiver<Option<Catalog>>,
    ) {
        if catalog.wait_for(Option::is_some).await.is_err() {
            return;
        }
        let mut n = 0u64;
        loop {
            n += 1;
            if self.count.is_some_and(|c| n > c) {
                return;
            }
            if n > 1 {
                tokio::time::sleep(self.interval).await;
            }
            if let Some(c) = catalog.borrow_and_update().clone() {
                self.devices = c.devices;
                self.attributes = c.attributes;
            }
            if tx.send(Input::Records(self.records(n))).await.is_err() {
                return;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::protocol::validate::judge;
    use serde_json::json;

    #[tokio::test]
    async fn simulation_waits_for_the_catalog_and_follows_its_changes() {
        let (tx, mut rx) = mpsc::channel(4);
        let (cat, cat_rx) = tokio::sync::watch::channel(None);
        let sim = Simulation {
            devices: Vec::new(),
            attributes: Vec::new(),
            count: Some(2),
            interval: Duration::ZERO,
            faulty_every: 0,
        };
        let task = tokio::spawn(sim.run(tx, cat_rx));
        tokio::task::yield_now().await;
        assert!(rx.try_recv().is_err(), "nothing before the catalog");
        let attributes: Vec<AttributeGroup> = serde_json::from_value(
            json!([{"p":"","tg":"","d":[{"ln":"temp","dt":0,"dv":"10 to 20","tg":""}]}]),
        )
        .unwrap();
        cat.send_replace(Some(Catalog {
            devices: vec![DeviceRef {
                id: "dev".into(),
                tg: String::new(),
            }],
            attributes,
        }));
        let Some(Input::Records(r)) = rx.recv().await else {
            panic!("a send")
        };
        assert_eq!(
            (r[0].unique_id.as_str(), r[0].data.len()),
            ("dev", 1),
            "{r:?}"
        );
        assert!(r[0].data.contains_key("temp"));
        task.await.unwrap();
    }

    #[test]
    fn simulated_values_pass_validation_except_the_faulty_send() {
        let sim = Simulation {
            devices: vec![DeviceRef { id: "gw".into(), tg: "gw".into() }],
            attributes: serde_json::from_value(json!([
                {"p":"","tg":"","d":[{"ln":"temp","dt":0,"dv":"10 to 20","tg":"gw"},{"ln":"mode","dt":1,"dv":"a,b","tg":"gw"},{"ln":"r","dt":3,"tg":"gw"}]},
                {"p":"gyro","tg":"gw","d":[{"ln":"x","dt":0,"dv":"-1 to 1","tg":"gw"}]}
            ]))
            .unwrap(),
            count: Some(3),
            interval: Duration::ZERO,
            faulty_every: 3,
        };
        for n in 1..=3 {
            let r = sim.records(n);
            let j = judge(&sim.attributes, "gw", &r[0].data);
            if n == 3 {
                assert_eq!(j.faulty_count, 1, "{j:?}");
                assert_eq!(j.good_count, 3);
            } else {
                assert_eq!(j.faulty_count, 0, "{j:?}");
                assert_eq!(j.good_count, 4);
            }
        }
    }
}
