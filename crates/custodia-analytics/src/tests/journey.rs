//! Journey stages from the kinds of a subject's facts.

use crate::{Fact, FactKind, JourneyStage, journey_stage};

use super::{at, fact, nps, order, refund, review};

const NOW: &str = "2024-06-30T00:00:00Z";

#[test]
fn journey_stage_table() {
    use FactKind::{CheckoutStarted, Identified, ProductAdded, ProductViewed};
    use JourneyStage::*;
    let eur = || order(1_000, "EUR");
    // Facts in time order → stage.
    let cases: Vec<(Vec<FactKind>, Option<JourneyStage>)> = vec![
        (vec![], None),
        (vec![Identified], Some(Awareness)),
        (vec![ProductViewed], Some(Awareness)),
        (vec![nps(10)], Some(Awareness)),
        (vec![review(5)], Some(Awareness)),
        (vec![ProductAdded], Some(Consideration)),
        (vec![ProductViewed, CheckoutStarted], Some(Consideration)),
        (vec![ProductAdded, nps(10)], Some(Consideration)),
        (vec![eur()], Some(Purchase)),
        (vec![eur(), refund(1_000, "EUR")], Some(Purchase)),
        (vec![eur(), review(3)], Some(Purchase)),
        (vec![eur(), nps(8)], Some(Purchase)),
        (vec![eur(), nps(10), nps(5)], Some(Purchase)),
        (vec![eur(), eur()], Some(Retention)),
        (vec![eur(), eur(), nps(8)], Some(Retention)),
        (vec![eur(), eur(), review(5), review(2)], Some(Retention)),
        (vec![eur(), nps(9)], Some(Advocacy)),
        (vec![eur(), review(4)], Some(Advocacy)),
        (vec![eur(), nps(3), review(5)], Some(Advocacy)),
        (vec![eur(), eur(), eur(), nps(5), nps(10)], Some(Advocacy)),
    ];
    for (kinds, expected) in cases {
        let facts: Vec<Fact> = kinds
            .iter()
            .enumerate()
            .map(|(idx, kind)| Fact {
                time: at("2024-01-01T00:00:00Z").plus_days(idx as i64),
                ..fact(1, NOW, *kind)
            })
            .collect();
        assert_eq!(journey_stage(&facts, at(NOW)), expected, "{kinds:?}");
    }
}

#[test]
fn facts_after_now_do_not_count() {
    let facts = [
        fact(1, "2024-06-01T00:00:00Z", order(1_000, "EUR")),
        fact(1, "2024-07-01T00:00:00Z", order(1_000, "EUR")),
        fact(1, "2024-07-02T00:00:00Z", nps(10)),
    ];
    assert_eq!(journey_stage(&facts, at(NOW)), Some(JourneyStage::Purchase));
    assert_eq!(
        journey_stage(&facts, at("2024-07-03T00:00:00Z")),
        Some(JourneyStage::Advocacy)
    );
    assert_eq!(journey_stage(&facts[1..], at(NOW)), None);
}

#[test]
fn stage_names() {
    let names: Vec<String> = JourneyStage::ALL
        .iter()
        .map(|stage| serde_json::to_string(stage).unwrap())
        .collect();
    assert_eq!(
        names,
        [
            "\"awareness\"",
            "\"consideration\"",
            "\"purchase\"",
            "\"retention\"",
            "\"advocacy\""
        ]
    );
}
