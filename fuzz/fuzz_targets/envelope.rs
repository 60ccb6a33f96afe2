#![no_main]
//! See docs/fuzzing.md; the body is `bftorderer_fuzz::envelope`, replayed over
//! fuzz/corpus/envelope/ by `cargo test -p orderer --test fuzz_corpus`.

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    let _ = bftorderer_fuzz::envelope(data);
});
