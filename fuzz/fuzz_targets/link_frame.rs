#![no_main]
//! See docs/fuzzing.md; the body is `bftorderer_fuzz::link_frame`, replayed over
//! fuzz/corpus/link_frame/ by `cargo test -p orderer --test fuzz_corpus`.

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    let _ = bftorderer_fuzz::link_frame(data);
});
