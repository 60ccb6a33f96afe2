#![no_main]
//! See docs/fuzzing.md; the body is `bftorderer_fuzz::replica`, replayed over
//! fuzz/corpus/replica/ by `cargo test -p orderer --test fuzz_corpus`.

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    let _ = bftorderer_fuzz::replica(data);
});
