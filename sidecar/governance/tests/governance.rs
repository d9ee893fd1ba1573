//! The proposal book as a state machine, against a reference model: random sequences of proposals
//! (new, repeated, reusing an id with other content, sharing heights, arriving out of height order),
//! queries of the state at a height, and restarts that rebuild the book from what was saved.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::indexing_slicing, reason = "test code")]

use alys_governance::{
    PauseScope, Proposal, ProposalAction, ProposalBook, ProposalError, RuntimeParameters, RuntimeState,
};
use proptest::prelude::*;

/// Heights the generated proposals use; queries go one past.
const HEIGHTS: u64 = 6;

fn defaults() -> RuntimeParameters {
    RuntimeParameters::with_max_blocks_without_pow(10)
}

/// What the book must answer, written the plain way: the first proposal accepted under each id, and the
/// state at a height folded over those effective there, sorted by (effective height, id).
#[derive(Debug, Default)]
struct Model {
    accepted: Vec<Proposal>,
}

impl Model {
    fn insert(&mut self, proposal: &Proposal) -> Result<bool, ProposalError> {
        match self.accepted.iter().find(|p| p.id == proposal.id) {
            Some(existing) if existing == proposal => Ok(false),
            Some(_) => Err(ProposalError::Conflicting(proposal.id.clone())),
            None => {
                self.accepted.push(proposal.clone());
                Ok(true)
            }
        }
    }

    fn state_at(&self, height: u64) -> RuntimeState {
        let mut effective: Vec<&Proposal> =
            self.accepted.iter().filter(|p| p.effective_height <= height).collect();
        effective.sort_by(|a, b| (a.effective_height, &a.id).cmp(&(b.effective_height, &b.id)));
        let mut state = RuntimeState {
            pegins_paused: false,
            pegouts_paused: false,
            production_paused: false,
            parameters: defaults(),
        };
        for proposal in effective {
            match &proposal.action {
                ProposalAction::Emergency { scope: PauseScope::Pegins, pause, .. } => {
                    state.pegins_paused = *pause
                }
                ProposalAction::Emergency { scope: PauseScope::Pegouts, pause, .. } => {
                    state.pegouts_paused = *pause
                }
                ProposalAction::Emergency { scope: PauseScope::BlockProduction, pause, .. } => {
                    state.production_paused = *pause;
                }
                ProposalAction::Parameter { name, value } => state.parameters.set(name, value).unwrap(),
                ProposalAction::Record { .. } => {}
            }
        }
        state
    }
}

#[derive(Debug, Clone)]
enum Op {
    /// A proposal arrives (from a small pool of ids and heights, so ids collide and heights repeat).
    Insert(Proposal),
    /// An earlier arrival comes again (a reconnect re-announces every proposal).
    Repeat(prop::sample::Index),
    /// The state at a height.
    Query(u64),
    /// The node restarts: the book is rebuilt from the saved proposals, read back by id.
    Restart,
}

fn action() -> impl Strategy<Value = (String, ProposalAction)> {
    let scope =
        prop_oneof![Just(PauseScope::Pegins), Just(PauseScope::Pegouts), Just(PauseScope::BlockProduction)];
    prop_oneof![
        4 => (scope, any::<bool>()).prop_map(|(scope, pause)| {
            ("EMERGENCY_ACTION".to_owned(), ProposalAction::Emergency { scope, pause, reason: String::new() })
        }),
        2 => (prop_oneof![Just("pegout_fee_rate_sat_vb"), Just("pegin_confirmations")], 1u64..5).prop_map(
            |(name, value)| {
                let action = ProposalAction::Parameter { name: name.to_owned(), value: value.to_string() };
                ("PARAMETER_CHANGE".to_owned(), action)
            }
        ),
        1 => Just(("UPGRADE".to_owned(), ProposalAction::Record { description: "v2".into() })),
    ]
}

fn proposal(ids: u8) -> impl Strategy<Value = Proposal> {
    (0..ids, 0..HEIGHTS, action()).prop_map(|(id, effective_height, (proposal_type, action))| Proposal {
        id: format!("p{id}"),
        proposal_type,
        effective_height,
        action,
    })
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        6 => proposal(8).prop_map(Op::Insert),
        2 => any::<prop::sample::Index>().prop_map(Op::Repeat),
        3 => (0..=HEIGHTS).prop_map(Op::Query),
        1 => Just(Op::Restart),
    ]
}

/// A book holding `proposals`, inserted in the order given.
fn book_of<'a>(proposals: impl IntoIterator<Item = &'a Proposal>) -> ProposalBook {
    let mut book = ProposalBook::new(defaults());
    for proposal in proposals {
        book.insert(proposal.clone()).unwrap();
    }
    book
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    #[test]
    fn the_book_answers_as_the_model_does(ops in prop::collection::vec(op(), 1..60)) {
        let mut book = ProposalBook::new(defaults());
        let mut model = Model::default();
        let mut arrived: Vec<Proposal> = Vec::new();
        for op in ops {
            match op {
                Op::Insert(proposal) => {
                    let expected = model.insert(&proposal);
                    prop_assert_eq!(book.check(&proposal), expected.clone(), "check of {:?}", proposal);
                    prop_assert_eq!(book.insert(proposal.clone()), expected, "insert of {:?}", proposal);
                    arrived.push(proposal);
                }
                Op::Repeat(index) => {
                    if !arrived.is_empty() {
                        let proposal = index.get(&arrived).clone();
                        prop_assert_eq!(book.insert(proposal.clone()), model.insert(&proposal));
                    }
                }
                Op::Query(height) => prop_assert_eq!(book.state_at(height), model.state_at(height)),
                Op::Restart => {
                    let mut saved = model.accepted.clone();
                    saved.sort_by(|a, b| a.id.cmp(&b.id));
                    let restarted = book_of(&saved);
                    prop_assert_eq!(&restarted, &book, "a restart changes nothing");
                    book = restarted;
                }
            }
        }
        for height in 0..=HEIGHTS {
            prop_assert_eq!(book.state_at(height), model.state_at(height), "height {}", height);
        }
        let order: Vec<(u64, &str)> = book.proposals().map(|p| (p.effective_height, p.id.as_str())).collect();
        let mut sorted = order.clone();
        sorted.sort_unstable();
        prop_assert_eq!(order, sorted, "listed in the order they apply");
        prop_assert_eq!(book.proposals().count(), model.accepted.len());
    }

    #[test]
    fn books_given_the_same_proposals_in_any_order_agree_at_every_height(
        (proposals, shuffled) in prop::collection::btree_map(0u8..16, proposal(1), 0..12)
            .prop_map(|by_id| {
                // Unique ids: which proposals a book holds does not depend on arrival order.
                by_id.into_iter().map(|(id, mut p)| { p.id = format!("p{id}"); p }).collect::<Vec<_>>()
            })
            .prop_flat_map(|proposals| (Just(proposals.clone()), Just(proposals).prop_shuffle())),
    ) {
        let one = book_of(&proposals);
        let other = book_of(&shuffled);
        prop_assert_eq!(&one, &other);
        for height in 0..=HEIGHTS {
            prop_assert_eq!(one.state_at(height), other.state_at(height), "height {}", height);
        }
    }
}

/// The case the order rule exists for: a pause and a resume of the same scope at the same height.
#[test]
fn a_pause_resume_pair_at_one_height_does_not_flip_with_arrival_order() {
    let at = |id: &str, pause: bool| Proposal {
        id: id.into(),
        proposal_type: "EMERGENCY_ACTION".into(),
        effective_height: 3,
        action: ProposalAction::Emergency {
            scope: PauseScope::BlockProduction,
            pause,
            reason: String::new(),
        },
    };
    let (pause, resume) = (at("2024-06-pause", true), at("2024-06-resume", false));
    let a = book_of([&pause, &resume]);
    let b = book_of([&resume, &pause]);
    for height in 0..=HEIGHTS {
        assert_eq!(a.state_at(height), b.state_at(height), "height {height}");
    }
    assert!(!a.state_at(3).production_paused, "the resume's id sorts last");
}
