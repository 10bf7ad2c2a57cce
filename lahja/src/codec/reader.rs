//! A strict serde deserializer of bincode 2's standard format (see the
//! module docs of `codec` for why it exists).

use serde::de::{self, DeserializeSeed, IntoDeserializer, Visitor};

/// How deeply values may nest (each `Option`, newtype, sequence element,
/// map entry or enum variant is a level): far below what overflows a stack.
const MAX_DEPTH: usize = 256;
/// How many elements that take no bytes (`()`, unit structs) one body may
/// hold in sequences: bounds the work a lying length can cause.
const MAX_EMPTY_ELEMENTS: usize = 1 << 20;

/// Why a body did not decode.
#[derive(Debug)]
pub(super) struct DecodeError(String);

impl std::fmt::Display for DecodeError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for DecodeError {}

impl de::Error for DecodeError {
    fn custom<T: std::fmt::Display>(msg: T) -> Self {
        DecodeError(msg.to_string())
    }
}

type Decoded<T> = std::result::Result<T, DecodeError>;

fn fail<T>(why: impl Into<String>) -> Decoded<T> {
    Err(DecodeError(why.into()))
}

/// A serde deserializer over one body in bincode 2's standard format.
pub(super) struct Reader<'de> {
    input: &'de [u8],
    depth: usize,
    empty_elements: usize,
    /// Elements that size hints may still promise, shared by all open
    /// sequences: serde preallocates what a hint says (up to 1 MiB each),
    /// and a hundred nested sequences must not each reserve that much.
    hint_budget: usize,
}

impl<'de> Reader<'de> {
    pub(super) fn new(input: &'de [u8]) -> Self {
        Reader {
            input,
            depth: 0,
            empty_elements: 0,
            hint_budget: input.len(),
        }
    }

    /// Whether the whole body was read.
    pub(super) fn is_empty(&self) -> bool {
        self.input.is_empty()
    }

    /// How many bytes are left unread.
    pub(super) fn remaining(&self) -> usize {
        self.input.len()
    }

    /// The next `n` bytes, checked against what is there before anything
    /// is allocated or copied.
    #[inline]
    fn take(&mut self, n: usize) -> Decoded<&'de [u8]> {
        match self.input.split_at_checked(n) {
            Some((taken, rest)) => {
                self.input = rest;
                Ok(taken)
            }
            None => self.too_short(n),
        }
    }

    // Kept out of line: the hot paths (a byte at a time for a `Vec<u8>`)
    // stay small enough to inline.
    #[cold]
    #[inline(never)]
    fn too_short<T>(&self, n: usize) -> Decoded<T> {
        fail(format!(
            "a length of {n} bytes, but only {} remain",
            self.input.len()
        ))
    }

    #[inline]
    fn byte(&mut self) -> Decoded<u8> {
        match self.input.split_first() {
            Some((&byte, rest)) => {
                self.input = rest;
                Ok(byte)
            }
            None => self.too_short(1),
        }
    }

    fn array<const N: usize>(&mut self) -> Decoded<[u8; N]> {
        Ok(self.take(N)?.try_into().expect("N bytes"))
    }

    /// An unsigned varint whose type is `bits` wide: a byte below 251 is
    /// the value, 251/252/253/254 announce a u16/u32/u64/u128 (accepted
    /// only when the type is at least that wide, as bincode does).
    fn varint(&mut self, bits: u32) -> Decoded<u128> {
        let (value, width) = match self.byte()? {
            small @ 0..=250 => return Ok(u128::from(small)),
            251 => (u128::from(u16::from_le_bytes(self.array()?)), 16),
            252 => (u128::from(u32::from_le_bytes(self.array()?)), 32),
            253 => (u128::from(u64::from_le_bytes(self.array()?)), 64),
            254 => (u128::from_le_bytes(self.array()?), 128),
            _ => return fail("invalid varint tag 255"),
        };
        if width > bits {
            return fail(format!("a {width}-bit varint for a {bits}-bit integer"));
        }
        Ok(value)
    }

    fn unsigned(&mut self, bits: u32) -> Decoded<u128> {
        self.varint(bits)
    }

    /// Zigzag: 0, -1, 1, -2, ... as 0, 1, 2, 3, ...
    fn signed(&mut self, bits: u32) -> Decoded<i128> {
        let raw = self.varint(bits)?;
        Ok(((raw >> 1) as i128) ^ -((raw & 1) as i128))
    }

    /// A length prefix (bincode writes `usize` as a u64 varint).
    fn len(&mut self) -> Decoded<usize> {
        usize::try_from(self.varint(64)?).or_else(|_| fail("a length beyond usize"))
    }

    fn str(&mut self) -> Decoded<&'de str> {
        let len = self.len()?;
        std::str::from_utf8(self.take(len)?).or_else(|e| fail(format!("invalid UTF-8: {e}")))
    }

    fn nested<T>(&mut self, read: impl FnOnce(&mut Self) -> Decoded<T>) -> Decoded<T> {
        if self.depth >= MAX_DEPTH {
            return fail(format!("nested deeper than {MAX_DEPTH} levels"));
        }
        self.depth += 1;
        let value = read(self);
        self.depth -= 1;
        value
    }

    /// Counts an element that took no bytes.
    #[inline]
    fn element_read(&mut self, before: usize) -> Decoded<()> {
        if self.input.len() == before {
            return self.empty_element();
        }
        Ok(())
    }

    #[cold]
    fn empty_element(&mut self) -> Decoded<()> {
        self.empty_elements += 1;
        if self.empty_elements > MAX_EMPTY_ELEMENTS {
            return fail("too many elements that take no bytes");
        }
        Ok(())
    }
}

fn narrow<T: TryFrom<u128>>(value: u128, what: &str) -> Decoded<T> {
    T::try_from(value).or_else(|_| fail(format!("{value} does not fit in {what}")))
}

fn narrow_signed<T: TryFrom<i128>>(value: i128, what: &str) -> Decoded<T> {
    T::try_from(value).or_else(|_| fail(format!("{value} does not fit in {what}")))
}

impl<'de> de::Deserializer<'de> for &mut Reader<'de> {
    type Error = DecodeError;

    fn deserialize_any<V: Visitor<'de>>(self, _: V) -> Decoded<V::Value> {
        fail("the format is not self-describing: types that need deserialize_any are not supported")
    }

    fn deserialize_bool<V: Visitor<'de>>(self, visitor: V) -> Decoded<V::Value> {
        match self.byte()? {
            0 => visitor.visit_bool(false),
            1 => visitor.visit_bool(true),
            other => fail(format!("invalid bool {other}")),
        }
    }

    fn deserialize_i8<V: Visitor<'de>>(self, visitor: V) -> Decoded<V::Value> {
        visitor.visit_i8(self.byte()? as i8)
    }

    fn deserialize_i16<V: Visitor<'de>>(self, visitor: V) -> Decoded<V::Value> {
        visitor.visit_i16(narrow_signed(self.signed(16)?, "i16")?)
    }

    fn deserialize_i32<V: Visitor<'de>>(self, visitor: V) -> Decoded<V::Value> {
        visitor.visit_i32(narrow_signed(self.signed(32)?, "i32")?)
    }

    fn deserialize_i64<V: Visitor<'de>>(self, visitor: V) -> Decoded<V::Value> {
        visitor.visit_i64(narrow_signed(self.signed(64)?, "i64")?)
    }

    fn deserialize_i128<V: Visitor<'de>>(self, visitor: V) -> Decoded<V::Value> {
        visitor.visit_i128(self.signed(128)?)
    }

    #[inline]
    fn deserialize_u8<V: Visitor<'de>>(self, visitor: V) -> Decoded<V::Value> {
        visitor.visit_u8(self.byte()?)
    }

    fn deserialize_u16<V: Visitor<'de>>(self, visitor: V) -> Decoded<V::Value> {
        visitor.visit_u16(narrow(self.unsigned(16)?, "u16")?)
    }

    fn deserialize_u32<V: Visitor<'de>>(self, visitor: V) -> Decoded<V::Value> {
        visitor.visit_u32(narrow(self.unsigned(32)?, "u32")?)
    }

    fn deserialize_u64<V: Visitor<'de>>(self, visitor: V) -> Decoded<V::Value> {
        visitor.visit_u64(narrow(self.unsigned(64)?, "u64")?)
    }

    fn deserialize_u128<V: Visitor<'de>>(self, visitor: V) -> Decoded<V::Value> {
        visitor.visit_u128(self.unsigned(128)?)
    }

    fn deserialize_f32<V: Visitor<'de>>(self, visitor: V) -> Decoded<V::Value> {
        visitor.visit_f32(f32::from_le_bytes(self.array()?))
    }

    fn deserialize_f64<V: Visitor<'de>>(self, visitor: V) -> Decoded<V::Value> {
        visitor.visit_f64(f64::from_le_bytes(self.array()?))
    }

    fn deserialize_char<V: Visitor<'de>>(self, visitor: V) -> Decoded<V::Value> {
        let first = *self
            .input
            .first()
            .ok_or_else(|| DecodeError("no char".into()))?;
        let width = match first {
            0x00..=0x7f => 1,
            0xc2..=0xdf => 2,
            0xe0..=0xef => 3,
            0xf0..=0xf4 => 4,
            _ => return fail(format!("invalid char encoding {first:#04x}")),
        };
        let bytes = self.take(width)?;
        match std::str::from_utf8(bytes)
            .ok()
            .and_then(|s| s.chars().next())
        {
            Some(c) => visitor.visit_char(c),
            None => fail("invalid char encoding"),
        }
    }

    fn deserialize_str<V: Visitor<'de>>(self, visitor: V) -> Decoded<V::Value> {
        visitor.visit_borrowed_str(self.str()?)
    }

    fn deserialize_string<V: Visitor<'de>>(self, visitor: V) -> Decoded<V::Value> {
        // Owned, as bincode hands it: exactly the bytes present.
        visitor.visit_string(self.str()?.to_owned())
    }

    fn deserialize_bytes<V: Visitor<'de>>(self, visitor: V) -> Decoded<V::Value> {
        let len = self.len()?;
        visitor.visit_borrowed_bytes(self.take(len)?)
    }

    fn deserialize_byte_buf<V: Visitor<'de>>(self, visitor: V) -> Decoded<V::Value> {
        let len = self.len()?;
        visitor.visit_byte_buf(self.take(len)?.to_vec())
    }

    fn deserialize_option<V: Visitor<'de>>(self, visitor: V) -> Decoded<V::Value> {
        match self.byte()? {
            0 => visitor.visit_none(),
            1 => self.nested(|reader| visitor.visit_some(reader)),
            other => fail(format!("invalid option tag {other}")),
        }
    }

    fn deserialize_unit<V: Visitor<'de>>(self, visitor: V) -> Decoded<V::Value> {
        visitor.visit_unit()
    }

    fn deserialize_unit_struct<V: Visitor<'de>>(
        self,
        _: &'static str,
        visitor: V,
    ) -> Decoded<V::Value> {
        visitor.visit_unit()
    }

    fn deserialize_newtype_struct<V: Visitor<'de>>(
        self,
        _: &'static str,
        visitor: V,
    ) -> Decoded<V::Value> {
        self.nested(|reader| visitor.visit_newtype_struct(reader))
    }

    fn deserialize_seq<V: Visitor<'de>>(self, visitor: V) -> Decoded<V::Value> {
        let len = self.len()?;
        self.deserialize_tuple(len, visitor)
    }

    fn deserialize_tuple<V: Visitor<'de>>(self, len: usize, visitor: V) -> Decoded<V::Value> {
        self.nested(|reader| visitor.visit_seq(Elements::new(reader, len)))
    }

    fn deserialize_tuple_struct<V: Visitor<'de>>(
        self,
        _: &'static str,
        len: usize,
        visitor: V,
    ) -> Decoded<V::Value> {
        self.deserialize_tuple(len, visitor)
    }

    fn deserialize_map<V: Visitor<'de>>(self, visitor: V) -> Decoded<V::Value> {
        let len = self.len()?;
        self.nested(|reader| visitor.visit_map(Elements::new(reader, len)))
    }

    fn deserialize_struct<V: Visitor<'de>>(
        self,
        _: &'static str,
        fields: &'static [&'static str],
        visitor: V,
    ) -> Decoded<V::Value> {
        self.deserialize_tuple(fields.len(), visitor)
    }

    fn deserialize_enum<V: Visitor<'de>>(
        self,
        _: &'static str,
        _: &'static [&'static str],
        visitor: V,
    ) -> Decoded<V::Value> {
        self.nested(|reader| visitor.visit_enum(reader))
    }

    fn deserialize_identifier<V: Visitor<'de>>(self, _: V) -> Decoded<V::Value> {
        fail("identifiers are not part of the format")
    }

    fn deserialize_ignored_any<V: Visitor<'de>>(self, _: V) -> Decoded<V::Value> {
        fail("the format is not self-describing: nothing can be skipped")
    }

    fn is_human_readable(&self) -> bool {
        false
    }
}

/// The elements of a sequence, tuple, struct or map.
struct Elements<'a, 'de> {
    reader: &'a mut Reader<'de>,
    left: usize,
    /// What `size_hint` says: never more elements than bytes left, and
    /// taken from the body's shared budget.
    hint: usize,
}

impl<'a, 'de> Elements<'a, 'de> {
    fn new(reader: &'a mut Reader<'de>, len: usize) -> Self {
        let hint = len.min(reader.input.len()).min(reader.hint_budget);
        reader.hint_budget -= hint;
        Elements {
            reader,
            left: len,
            hint,
        }
    }

    #[inline]
    fn element<T>(
        &mut self,
        read: impl FnOnce(&mut Reader<'de>) -> Decoded<T>,
    ) -> Decoded<Option<T>> {
        if self.left == 0 {
            return Ok(None);
        }
        self.left -= 1;
        let before = self.reader.input.len();
        let value = read(self.reader)?;
        self.reader.element_read(before)?;
        Ok(Some(value))
    }

    fn hint(&self) -> Option<usize> {
        Some(self.hint.min(self.left))
    }
}

impl<'de> de::SeqAccess<'de> for Elements<'_, 'de> {
    type Error = DecodeError;

    #[inline]
    fn next_element_seed<T: DeserializeSeed<'de>>(&mut self, seed: T) -> Decoded<Option<T::Value>> {
        self.element(|reader| seed.deserialize(reader))
    }

    fn size_hint(&self) -> Option<usize> {
        self.hint()
    }
}

impl<'de> de::MapAccess<'de> for Elements<'_, 'de> {
    type Error = DecodeError;

    fn next_key_seed<K: DeserializeSeed<'de>>(&mut self, seed: K) -> Decoded<Option<K::Value>> {
        self.element(|reader| seed.deserialize(reader))
    }

    fn next_value_seed<V: DeserializeSeed<'de>>(&mut self, seed: V) -> Decoded<V::Value> {
        seed.deserialize(&mut *self.reader)
    }

    fn size_hint(&self) -> Option<usize> {
        self.hint()
    }
}

impl<'de> de::EnumAccess<'de> for &mut Reader<'de> {
    type Error = DecodeError;
    type Variant = Self;

    fn variant_seed<V: DeserializeSeed<'de>>(self, seed: V) -> Decoded<(V::Value, Self)> {
        let index: u32 = narrow(self.unsigned(32)?, "a variant index")?;
        let variant = seed.deserialize(index.into_deserializer())?;
        Ok((variant, self))
    }
}

impl<'de> de::VariantAccess<'de> for &mut Reader<'de> {
    type Error = DecodeError;

    fn unit_variant(self) -> Decoded<()> {
        Ok(())
    }

    fn newtype_variant_seed<T: DeserializeSeed<'de>>(self, seed: T) -> Decoded<T::Value> {
        seed.deserialize(self)
    }

    fn tuple_variant<V: Visitor<'de>>(self, len: usize, visitor: V) -> Decoded<V::Value> {
        de::Deserializer::deserialize_tuple(self, len, visitor)
    }

    fn struct_variant<V: Visitor<'de>>(
        self,
        fields: &'static [&'static str],
        visitor: V,
    ) -> Decoded<V::Value> {
        de::Deserializer::deserialize_tuple(self, fields.len(), visitor)
    }
}
