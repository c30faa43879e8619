//! Outputs that split along with a range of independent units (images, planes, rows), so a
//! driver can hand each part of the work its own piece: the parallel driver (`rayon`
//! feature) cuts them into one part per thread, the serial build passes them whole.

/// Something that splits along with the units: a slice of `unit` elements per unit, or a
/// tuple or option of such.
#[cfg_attr(not(feature = "rayon"), allow(dead_code))]
pub(crate) trait Split: Sized + Send {
    /// The first `units` units and the rest.
    fn split(self, units: usize) -> (Self, Self);
}

/// A mutable slice holding `unit` elements per unit; the last unit may be shorter (a
/// partial block of channels).
pub(crate) struct Units<'a, T> {
    pub data: &'a mut [T],
    pub unit: usize,
}

impl<T: Send> Split for Units<'_, T> {
    fn split(self, units: usize) -> (Self, Self) {
        let at = units.saturating_mul(self.unit).min(self.data.len());
        let (a, b) = self.data.split_at_mut(at);
        let unit = self.unit;
        (Units { data: a, unit }, Units { data: b, unit })
    }
}

/// Nothing to split: parts that write their results into their own scratch.
impl Split for () {
    fn split(self, _: usize) -> (Self, Self) {
        ((), ())
    }
}

impl<A: Split, B: Split> Split for (A, B) {
    fn split(self, units: usize) -> (Self, Self) {
        let (a0, a1) = self.0.split(units);
        let (b0, b1) = self.1.split(units);
        ((a0, b0), (a1, b1))
    }
}

impl<A: Split> Split for Option<A> {
    fn split(self, units: usize) -> (Self, Self) {
        match self {
            Some(a) => {
                let (x, y) = a.split(units);
                (Some(x), Some(y))
            }
            None => (None, None),
        }
    }
}
