//! Several OSNs on one partition: identical chains whatever their time-to-cut races, each OSN
//! signing its blocks with its own key, and an OSN killed mid-stream resumes from its ledger
//! without gap or duplicate. (Every OSN has the channel configuration's batch timeout, as with
//! Fabric; OSNs with different timers are `core::sim_tests`'s property.)

use std::time::Duration;

use crate::harness::*;

#[actix_rt::test]
async fn three_osns_racing_to_cut_with_their_own_keys_cut_identical_chains() {
    let channel = channel_name("three");
    let broker = Broker::with_topic(&channel);
    let base = OsnSpec { max_message_count: 30, batch_timeout: "20ms", ..OsnSpec::new(&channel, &broker) };
    let mut osns = Vec::new();
    for n in 0..3 {
        osns.push(Osn::start(OsnSpec { osn_identity: n, ..base.clone() }).await);
    }
    // Bursts of different sizes through all three at once, with pauses so timeouts cut too.
    let mut sent = Vec::new();
    for round in 0..4 {
        let batch: Vec<_> = (0..3).map(|i| envelopes(&channel, 17 + 13 * round + i, 250)).collect();
        let urls: Vec<String> = osns.iter().map(|o| o.broadcast_url()).collect();
        futures_util::future::join_all(batch.iter().zip(&urls).map(|(envs, url)| broadcast_all(url, envs, 8))).await;
        sent.extend(batch.into_iter().flatten());
        // Bursts do not fill blocks: waiting for all of them to be ordered makes the OSNs'
        // time-to-cut proposals (all at 20 ms) race to end each burst's last block.
        osns[0].wait_for_transactions(sent.len(), Duration::from_secs(30)).await;
    }
    let mut chains = Vec::new();
    for osn in &osns {
        chains.push(osn.wait_for_transactions(sent.len(), Duration::from_secs(60)).await);
    }
    check_chain(&chains[0], &sent, &base);
    assert!(chains[0].len() > 5, "several blocks were cut");
    // Identical, every chain verifies against the orderer organisation, and each block carries
    // exactly its own OSN's signature: the same signed value, a different signer.
    assert_identical(&chains);
    let signer_of = |block: &osn::proto::Block| {
        let meta = osn::core::block::signatures_metadata(block).unwrap();
        assert_eq!(meta.signatures.len(), 1);
        let header =
            <osn::proto::SignatureHeader as prost::Message>::decode(meta.signatures[0].signature_header.clone());
        (meta.value, header.unwrap().creator)
    };
    // Block 0 is the created channel's, unsigned as Fabric writes it.
    for n in 1..chains[0].len() {
        let signed: Vec<_> = chains.iter().map(|c| signer_of(&c[n])).collect();
        assert!(signed.iter().all(|(value, _)| *value == signed[0].0), "block {n}: the signed value differs");
        for (i, (_, creator)) in signed.iter().enumerate() {
            let id = osn::identity::SigningIdentity::load(&crypto().osn_identity(i)).unwrap();
            assert_eq!(*creator, id.serialized(), "block {n} of OSN {i} is signed by OSN {i}");
        }
    }
}

#[actix_rt::test]
async fn killed_osn_resumes_from_its_ledger_without_gap_or_duplicate() {
    let channel = channel_name("restart");
    let broker = Broker::with_topic(&channel);
    let spec = OsnSpec { max_message_count: 10, batch_timeout: "50ms", ..OsnSpec::new(&channel, &broker) };
    let a = Osn::start(spec.clone()).await;
    let mut b = Osn::start(spec.clone()).await;

    let mut sent = Vec::new();
    for round in 0..3 {
        // Load keeps flowing through A while B is killed and comes back.
        let envs = envelopes(&channel, 120, 400);
        let url = a.broadcast_url();
        let load = broadcast_all(&url, &envs, 16);
        if round == 1 {
            let kill_after = b.height().await + 2;
            let b = &mut b;
            futures_util::join!(load, async move {
                wait_for("B to order two more blocks", Duration::from_secs(30), || {
                    let b = &*b;
                    async move { (b.height().await >= kill_after).then_some(()) }
                })
                .await;
                b.kill();
            });
        } else {
            load.await;
        }
        sent.extend(envs);
        if round == 1 {
            // More while B is down, then B restarts on its ledger.
            let envs = envelopes(&channel, 60, 400);
            broadcast_all(&a.broadcast_url(), &envs, 16).await;
            sent.extend(envs);
            b.restart().await;
        }
    }
    let chain_a = a.wait_for_transactions(sent.len(), Duration::from_secs(60)).await;
    let chain_b = b.wait_for_transactions(sent.len(), Duration::from_secs(60)).await;
    check_chain(&chain_b, &sent, &spec);
    let view_a: Vec<_> = chain_a.iter().map(consensus_view).collect();
    let view_b: Vec<_> = chain_b.iter().map(consensus_view).collect();
    assert_eq!(view_a, view_b, "same chain on both OSNs");
}

#[actix_rt::test]
async fn osns_whose_channel_configurations_differ_report_it() {
    let channel = channel_name("mismatch");
    let broker = Broker::with_topic(&channel);
    let a = Osn::start(OsnSpec { max_message_count: 10, ..OsnSpec::new(&channel, &broker) }).await;
    let b = Osn::start(OsnSpec { max_message_count: 20, ..OsnSpec::new(&channel, &broker) }).await;
    let said = |osn: &Osn| osn.log().contains("has a different genesis block");
    wait_for("both OSNs to report the other's genesis block", Duration::from_secs(30), || async {
        (said(&a) && said(&b)).then_some(())
    })
    .await;
}
