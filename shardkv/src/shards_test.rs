//! Unit tests of the shard table: each transition, each refusal, and, over
//! random configuration sequences played by several groups at once, that a
//! shard's data is never served by two groups, never lost, and never
//! served before it arrived.

use std::collections::BTreeMap;

use super::*;

const SHARDS: u32 = 4;

fn config(num: u64, owners: [u64; SHARDS as usize]) -> Config {
    let shards: Vec<GroupId> = owners.iter().map(|&gid| GroupId(gid)).collect();
    let groups = shards
        .iter()
        .filter(|gid| !gid.is_unassigned())
        .map(|gid| (*gid, vec![format!("g{}:1", gid.0)]))
        .collect();
    Config {
        num: ConfigNum(num),
        shards,
        groups,
    }
}

fn next(config: Config) -> NextConfig {
    NextConfig {
        config,
        holders: BTreeMap::new(),
    }
}

// Goal: the first configuration gives a group shards nobody held: they
// serve at once, empty; the others are another group's.
#[test]
fn shards_nobody_held_serve_at_once() {
    let mut table = ShardTable::new(GroupId(1), SHARDS);
    table
        .apply_config(&next(config(1, [1, 1, 2, 2])))
        .expect("applies");
    assert_eq!(table.state(ShardId(0)), Some(ShardState::Serving));
    assert_eq!(table.route(ShardId(1)), Ok(()));
    assert_eq!(table.route(ShardId(2)), Err(NotServed::WrongGroup));
    assert!(table.settled());
}

// Goal: a shard gained from a group is pulled, served once installed
// (Cleaning serves), settled once its old copy is deleted; the one lost is
// sent and dropped when its new owner asks. Stale and repeated steps change
// nothing.
#[test]
fn a_moved_shard_is_pulled_installed_cleaned_and_handed_over() {
    let mut one = ShardTable::new(GroupId(1), SHARDS);
    let mut two = ShardTable::new(GroupId(2), SHARDS);
    for table in [&mut one, &mut two] {
        table
            .apply_config(&next(config(1, [1, 1, 2, 2])))
            .expect("1");
        table
            .apply_config(&next(config(2, [1, 2, 2, 2])))
            .expect("2");
    }
    assert_eq!(
        one.state(ShardId(1)),
        Some(ShardState::Sending { to: GroupId(2) })
    );
    assert_eq!(one.route(ShardId(1)), Err(NotServed::WrongGroup));
    assert_eq!(
        two.state(ShardId(1)),
        Some(ShardState::Pulling { from: GroupId(1) })
    );
    assert_eq!(two.route(ShardId(1)), Err(NotServed::NotReady));
    assert_eq!(two.route(ShardId(2)), Ok(()), "unaffected shards serve");
    assert!(!two.installed(ShardId(1), ConfigNum(1)), "stale install");
    assert!(two.installed(ShardId(1), ConfigNum(2)));
    assert!(!two.installed(ShardId(1), ConfigNum(2)), "repeated install");
    assert_eq!(two.route(ShardId(1)), Ok(()), "Cleaning serves");
    assert!(!two.settled());
    assert!(
        !one.handed_over(ShardId(1), GroupId(3), ConfigNum(2)),
        "misdirected"
    );
    assert!(
        !one.handed_over(ShardId(1), GroupId(2), ConfigNum(1)),
        "stale"
    );
    assert!(one.handed_over(ShardId(1), GroupId(2), ConfigNum(2)));
    assert!(
        !one.handed_over(ShardId(1), GroupId(2), ConfigNum(2)),
        "repeated"
    );
    assert_eq!(one.state(ShardId(1)), None);
    assert!(two.cleaned(ShardId(1), ConfigNum(2)));
    assert!(!two.cleaned(ShardId(1), ConfigNum(2)));
    assert!(one.settled() && two.settled());
}

// Goal: configurations apply in order, one shard count, and only once the
// group has settled; a refused one changes nothing.
#[test]
fn configurations_apply_in_order_and_only_when_settled() {
    let mut table = ShardTable::new(GroupId(2), SHARDS);
    let skipped = table.apply_config(&next(config(2, [2, 2, 2, 2])));
    assert_eq!(
        skipped,
        Err(ConfigRefused::OutOfOrder {
            current: ConfigNum(0),
            offered: ConfigNum(2)
        })
    );
    let mut short = config(1, [2, 2, 2, 2]);
    short.shards.pop();
    assert!(matches!(
        table.apply_config(&next(short)),
        Err(ConfigRefused::ShardCount { .. })
    ));
    table
        .apply_config(&next(config(1, [1, 1, 1, 1])))
        .expect("1");
    table
        .apply_config(&next(config(2, [2, 1, 1, 1])))
        .expect("2");
    let before = table.clone();
    let early = table.apply_config(&next(config(3, [2, 2, 1, 1])));
    assert!(matches!(
        early,
        Err(ConfigRefused::NotSettled {
            state: "pulling",
            ..
        })
    ));
    assert_eq!(table, before);
}

// Goal: when every group leaves, the last holder parks its shards (keeps
// the data, may move on); the next owner pulls them from it, through the
// holders the log carries.
#[test]
fn parked_shards_wait_for_their_next_owner() {
    let mut one = ShardTable::new(GroupId(1), SHARDS);
    one.apply_config(&next(config(1, [1, 1, 1, 1]))).expect("1");
    one.apply_config(&next(config(2, [0, 0, 0, 0]))).expect("2");
    assert_eq!(
        one.state(ShardId(0)),
        Some(ShardState::Sending { to: GroupId(0) })
    );
    assert!(one.settled(), "parked shards do not hold the group back");
    one.apply_config(&next(config(3, [0, 0, 0, 0]))).expect("3");
    let mut two = ShardTable::new(GroupId(2), SHARDS);
    for num in 1..=3 {
        let owners = [[1, 1, 1, 1], [0, 0, 0, 0], [0, 0, 0, 0]][num - 1];
        two.apply_config(&next(config(num as u64, owners)))
            .expect("catch up");
    }
    let holders: BTreeMap<ShardId, GroupId> =
        (0..3).map(|shard| (ShardId(shard), GroupId(1))).collect();
    let fourth = NextConfig {
        config: config(4, [2, 2, 2, 1]),
        holders: holders.clone(),
    };
    two.apply_config(&fourth).expect("4");
    one.apply_config(&fourth).expect("4");
    assert_eq!(
        two.state(ShardId(0)),
        Some(ShardState::Pulling { from: GroupId(1) })
    );
    assert_eq!(
        one.state(ShardId(0)),
        Some(ShardState::Sending { to: GroupId(2) })
    );
    assert_eq!(
        one.state(ShardId(3)),
        Some(ShardState::Serving),
        "given back"
    );
    assert!(!one.settled());
}

/// A seeded splitmix64 stream (no dependency for a test's dice).
struct Dice(u64);

impl Dice {
    fn below(&mut self, bound: u64) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        (z ^ (z >> 31)) % bound
    }
}

/// Several groups, each with its table and its copy of each shard's data
/// (a token: which write made it), moving through random configurations.
struct World {
    tables: BTreeMap<GroupId, ShardTable>,
    data: BTreeMap<(GroupId, ShardId), u64>,
    history: Vec<Config>,
    next_token: u64,
}

impl World {
    fn new(groups: u64) -> World {
        World {
            tables: (1..=groups)
                .map(|gid| (GroupId(gid), ShardTable::new(GroupId(gid), SHARDS)))
                .collect(),
            data: BTreeMap::new(),
            history: vec![Config::initial(SHARDS)],
            next_token: 1,
        }
    }

    /// What the leader logs: for shards whose current owner is gid 0, the
    /// last group that owned them in the history.
    fn holders(&self) -> BTreeMap<ShardId, GroupId> {
        (0..SHARDS)
            .map(ShardId)
            .filter_map(|shard| {
                let last =
                    self.history.iter().rev().find_map(|config| {
                        config.owner(shard).filter(|gid| !gid.is_unassigned())
                    })?;
                Some((shard, last))
            })
            .collect()
    }

    /// Every group applies `config`, then the moves complete in an order
    /// the dice draw, one step at a time, with writes at the owners.
    fn reconfigure(&mut self, config: Config, dice: &mut Dice) {
        let next = NextConfig {
            config: config.clone(),
            holders: self.holders(),
        };
        for table in self.tables.values_mut() {
            table
                .apply_config(&next)
                .expect("settled groups apply in order");
        }
        self.history.push(config);
        self.check_serving();
        while !self.tables.values().all(ShardTable::settled) {
            self.write(dice);
            self.step(dice);
            self.check_serving();
        }
    }

    /// Takes one pending step of one group, drawn by the dice.
    fn step(&mut self, dice: &mut Dice) {
        let mut steps = Vec::new();
        for (gid, table) in &self.tables {
            for (shard, state) in table.states() {
                match state {
                    ShardState::Pulling { from } => steps.push((*gid, shard, from, true)),
                    ShardState::Cleaning { from } => steps.push((*gid, shard, from, false)),
                    _ => {}
                }
            }
        }
        assert!(
            !steps.is_empty(),
            "a group waits on a move nobody can make: {:?}",
            self.tables
        );
        let (gid, shard, from, pulling) = steps[dice.below(steps.len() as u64) as usize];
        let num = self.tables[&gid].config().num;
        if pulling {
            let token = self.data.get(&(from, shard)).copied();
            assert!(self.tables.get_mut(&gid).unwrap().installed(shard, num));
            if let Some(token) = token {
                self.data.insert((gid, shard), token);
            }
        } else {
            let source = self.tables.get_mut(&from).unwrap();
            assert!(source.handed_over(shard, gid, num), "the holder hands over");
            self.data.remove(&(from, shard));
            assert!(self.tables.get_mut(&gid).unwrap().cleaned(shard, num));
        }
    }

    /// A client writes to a random shard wherever it is served.
    fn write(&mut self, dice: &mut Dice) {
        let shard = ShardId(dice.below(u64::from(SHARDS)) as u32);
        for (gid, table) in &self.tables {
            if table.route(shard).is_ok() {
                self.data.insert((*gid, shard), self.next_token);
                self.next_token += 1;
            }
        }
    }

    /// At most one group serves each shard, and a group serving a shard
    /// has its data, the latest written.
    fn check_serving(&self) {
        for shard in (0..SHARDS).map(ShardId) {
            let serving: Vec<GroupId> = self
                .tables
                .iter()
                .filter(|(_, table)| table.route(shard).is_ok())
                .map(|(gid, _)| *gid)
                .collect();
            assert!(serving.len() <= 1, "{shard} served by {serving:?}");
            let copies: Vec<u64> = self
                .data
                .iter()
                .filter(|((_, s), _)| *s == shard)
                .map(|(_, token)| *token)
                .collect();
            let newest = copies.iter().max().copied();
            if let Some(&gid) = serving.first()
                && newest.is_some()
            {
                assert_eq!(
                    self.data.get(&(gid, shard)).copied(),
                    newest,
                    "{gid} serves {shard} without its newest data"
                );
            }
        }
    }
}

// Goal: over random configuration sequences (groups joining, leaving, all
// leaving at once, shards moved one by one) played by three groups whose
// moves complete in random orders, with writes in between: no shard is
// ever served by two groups, nor by a group without its newest data, and
// every shard written once keeps a copy.
#[test]
fn random_reconfigurations_never_lose_or_double_serve_a_shard() {
    for seed in 0..500 {
        if let Err(panic) = std::panic::catch_unwind(|| play(seed)) {
            let why = panic
                .downcast_ref::<String>()
                .cloned()
                .or_else(|| panic.downcast_ref::<&str>().map(|s| (*s).to_string()))
                .unwrap_or_default();
            panic!("SEED={seed}: {why}");
        }
    }
}

/// Plays one seed: 12 random configurations, three groups, writes.
fn play(seed: u64) {
    let mut dice = Dice(seed);
    let mut world = World::new(3);
    for num in 1..=12 {
        let owners = [(); SHARDS as usize].map(|()| dice.below(4));
        let mut next = config(num, owners);
        if dice.below(5) == 0 {
            next = config(num, [0; SHARDS as usize]);
        }
        world.reconfigure(next, &mut dice);
        world.write(&mut dice);
    }
    let written: std::collections::BTreeSet<ShardId> =
        world.data.keys().map(|(_, shard)| *shard).collect();
    for shard in written {
        let copies = world.data.keys().filter(|(_, s)| *s == shard).count();
        assert_eq!(copies, 1, "{shard} has {copies} copies");
    }
}

// Goal: a holder asked again for the deletion of a shard it handed over in
// configuration N answers that the copy is gone once it is past N, even
// when a later configuration gave it the shard back (`Pulling`); before
// it reaches N, or while still `Sending` in N, the copy is not gone.
// Regression: answering "not gone" whenever the holder held the shard
// again kept the new owner `Cleaning` in N and the holder `Pulling` in
// N + 1 forever.
#[test]
fn a_holder_past_the_move_has_handed_the_shard_over_even_if_it_got_it_back() {
    let mut one = ShardTable::new(GroupId(1), SHARDS);
    one.apply_config(&next(config(1, [1, 1, 2, 2]))).expect("1");
    assert!(
        !one.handed_over_since(ShardId(1), ConfigNum(2)),
        "not at the move yet"
    );
    one.apply_config(&next(config(2, [1, 2, 2, 2]))).expect("2");
    assert!(
        !one.handed_over_since(ShardId(1), ConfigNum(2)),
        "still Sending"
    );
    assert!(one.handed_over(ShardId(1), GroupId(2), ConfigNum(2)));
    assert!(one.handed_over_since(ShardId(1), ConfigNum(2)));
    one.apply_config(&next(config(3, [1, 1, 2, 2]))).expect("3");
    assert_eq!(
        one.state(ShardId(1)),
        Some(ShardState::Pulling { from: GroupId(2) })
    );
    assert!(
        one.handed_over_since(ShardId(1), ConfigNum(2)),
        "past the move, holding the shard again"
    );
}
