//! Cleaning a table into the numbers a model takes: rows and columns dropped,
//! missing cells imputed, categories encoded, outliers clipped, skewed columns
//! transformed, dates expanded, and the result standardised, each step fitted on
//! the training split only and applied the same way to validation, test and new
//! rows (scikit-learn's `SimpleImputer`, `OneHotEncoder`, `OrdinalEncoder`,
//! `PowerTransformer`, `StandardScaler` in a `ColumnTransformer`; Keras's
//! `StringLookup`, `CategoryEncoding`, `Normalization`).
//!
//! A [`TablePipeline`] says what to do; [`TablePipeline::fit`] learns the
//! statistics from a training [`Frame`](crate::Frame) and returns a [`FittedPipeline`], which
//! turns any frame of the same columns into an [`InMemory`](crate::InMemory) data
//! set ([`FittedPipeline::transform`]) or into inputs to predict on
//! ([`FittedPipeline::inputs`]), and which saves itself as JSON
//! ([`FittedPipeline::to_json`]) to travel in a checkpoint.
//!
//! ```
//! use kiln_data::frame::{Frame, ReadOptions};
//! use kiln_data::{Encoding, Impute, TablePipeline};
//!
//! let train = Frame::parse_csv(
//!     b"species,island,mass,sex\nA,Dream,3700,male\nA,Dream,NA,female\nG,Biscoe,5000,male\nG,Biscoe,4900,NA\n",
//!     "train.csv",
//!     &ReadOptions::new(),
//! )?;
//! let fitted = TablePipeline::new("species")
//!     .impute(Impute::Median)       // number columns
//!     .missing_indicators()         // and a `mass.missing` column saying where
//!     .encode(Encoding::OneHot)     // category columns (the default)
//!     .standardize()
//!     .fit(&train)?;
//! assert_eq!(
//!     fitted.feature_names(),
//!     ["island=Biscoe", "island=Dream", "island.unknown", "mass", "mass.missing",
//!      "sex=female", "sex=male", "sex.unknown", "sex.missing"]
//! );
//! let data = fitted.transform(&train)?; // 4 rows of 9 features, labels 0, 0, 1, 1
//! assert_eq!(data.labels(), Some(&[0, 0, 1, 1][..]));
//!
//! // New rows with a missing mass and an island unseen in training.
//! let new = Frame::parse_csv(b"island,mass,sex\nTorgersen,NA,female\n", "new.csv", &fitted.read_options())?;
//! let x = fitted.inputs(&new)?;
//! assert_eq!(&x.floats().unwrap_or_default()[..3], &[0.0, 0.0, 1.0]); // the reserved slot
//! # Ok::<(), kiln_data::Error>(())
//! ```
//!
//! The steps run in this order, each fitted on what the steps before it give on
//! the training rows: columns dropped (asked for, text, over a missing fraction);
//! rows dropped (without a target, over a missing fraction, duplicates: only from
//! labelled data, never from rows to predict on); dates expanded to their year and
//! day of the year; imputation (with missing indicators); clipping to quantiles; the
//! `log1p`, Yeo-Johnson and Box-Cox transforms; encoding of categories; scaling.

mod apply;
mod fit;
mod report;
mod save;

use crate::frame::Kind;

/// How to fill a missing cell.
#[derive(Clone, Debug, PartialEq)]
pub enum Impute {
    /// The training values' mean (numbers and dates).
    Mean,
    /// Their median (numbers and dates).
    Median,
    /// The most frequent value, the smallest of equally frequent ones (any kind).
    MostFrequent,
    /// A number (number columns).
    Constant(f64),
    /// A category, which joins the categories if the training rows need it
    /// (category columns; `"missing"`, say).
    ConstantCategory(String),
}

/// How a category column becomes numbers. Categories are sorted (as
/// scikit-learn's encoders sort them).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Encoding {
    /// One column a category, 1 in the row's category's column and 0 elsewhere
    /// (`island=Biscoe`, `island=Dream`, ...).
    OneHot,
    /// One column holding the category's rank, from 0.
    Ordinal,
}

/// What a category unseen in training becomes when the pipeline is applied.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Unknown {
    /// A slot of its own: a last one-hot column (`island.unknown`), or the rank
    /// after the last (Keras's out-of-vocabulary index).
    Reserved,
    /// An error that names the column, the row and the categories seen.
    Error,
}

/// A transform of a skewed number column, after imputation and clipping.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Reshape {
    /// `ln(1 + x)`; a value at or below -1 is an error.
    Log1p,
    /// Yeo-Johnson's power transform with the exponent that makes the training
    /// values most nearly normal (scikit-learn's `PowerTransformer`).
    Power,
    /// Box-Cox's power transform of a positive column, its exponent fitted as for
    /// [`Reshape::Power`] (`PowerTransformer(method="box-cox")`); a value at or
    /// below 0 is an error.
    BoxCox,
}

/// The last step: an affine map of each feature that came from a number or a date
/// (of every feature with [`TablePipeline::scale_every_feature`]; else encoded
/// categories and missing indicators stay as they are), as the
/// [`Pipeline`](crate::Pipeline)'s standardisation and normalisation do.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Scaling {
    /// Values as they are.
    #[default]
    None,
    /// `(x - mean) / std` with the training mean and population std (a constant
    /// column maps to 0), as `StandardScaler` and Keras's `Normalization`.
    Standardize,
    /// `(x - min) / (max - min)` to the training range (`MinMaxScaler`).
    MinMax,
}

/// What to clean and how; [`TablePipeline::fit`] learns the statistics.
#[derive(Clone, Debug, PartialEq)]
pub struct TablePipeline {
    pub(crate) target: String,
    pub(crate) drop: Vec<String>,
    pub(crate) max_missing_row: Option<f64>,
    pub(crate) max_missing_column: Option<f64>,
    pub(crate) drop_duplicates: bool,
    pub(crate) impute_numbers: Impute,
    pub(crate) impute_categories: Impute,
    pub(crate) impute_columns: Vec<(String, Impute)>,
    pub(crate) indicators: bool,
    pub(crate) encoding: Encoding,
    pub(crate) encode_columns: Vec<(String, Encoding)>,
    pub(crate) unknown: Unknown,
    pub(crate) clip: Option<(f64, f64)>,
    pub(crate) clip_columns: Vec<(String, (f64, f64))>,
    pub(crate) reshape: Vec<(String, Reshape)>,
    pub(crate) scaling: Scaling,
    pub(crate) scale_every_feature: bool,
}

impl TablePipeline {
    /// A pipeline that predicts column `target` (a category column gives class
    /// labels, a number column real values) from every other column. By default it
    /// imputes numbers and dates with the mean and categories with the most
    /// frequent one, one-hot encodes categories with a reserved slot for unseen
    /// ones, leaves text columns out, and scales nothing.
    pub fn new(target: impl Into<String>) -> Self {
        Self {
            target: target.into(),
            drop: Vec::new(),
            max_missing_row: None,
            max_missing_column: None,
            drop_duplicates: false,
            impute_numbers: Impute::Mean,
            impute_categories: Impute::MostFrequent,
            impute_columns: Vec::new(),
            indicators: false,
            encoding: Encoding::OneHot,
            encode_columns: Vec::new(),
            unknown: Unknown::Reserved,
            clip: None,
            clip_columns: Vec::new(),
            reshape: Vec::new(),
            scaling: Scaling::None,
            scale_every_feature: false,
        }
    }

    /// Leaves these columns out.
    #[must_use]
    pub fn drop_columns<S: Into<String>>(mut self, names: impl IntoIterator<Item = S>) -> Self {
        self.drop.extend(names.into_iter().map(Into::into));
        self
    }

    /// Drops the rows of labelled data that miss more than `fraction` (0 to 1) of
    /// their input cells.
    #[must_use]
    pub fn drop_rows_missing_over(mut self, fraction: f64) -> Self {
        self.max_missing_row = Some(fraction);
        self
    }

    /// Leaves out the columns that miss more than `fraction` (0 to 1) of their
    /// cells in the training rows.
    #[must_use]
    pub fn drop_columns_missing_over(mut self, fraction: f64) -> Self {
        self.max_missing_column = Some(fraction);
        self
    }

    /// Drops the rows of labelled data equal to an earlier row in every column used.
    #[must_use]
    pub fn drop_duplicates(mut self) -> Self {
        self.drop_duplicates = true;
        self
    }

    /// How to fill the missing cells of number and date columns (default
    /// [`Impute::Mean`]).
    #[must_use]
    pub fn impute(mut self, how: Impute) -> Self {
        self.impute_numbers = how;
        self
    }

    /// How to fill the missing cells of category columns (default
    /// [`Impute::MostFrequent`]).
    #[must_use]
    pub fn impute_categories(mut self, how: Impute) -> Self {
        self.impute_categories = how;
        self
    }

    /// How to fill the missing cells of column `name`, whatever the default.
    #[must_use]
    pub fn impute_column(mut self, name: impl Into<String>, how: Impute) -> Self {
        self.impute_columns.push((name.into(), how));
        self
    }

    /// Adds a column `<name>.missing` (1 where the cell was missing, else 0) after
    /// each column that misses cells in the training rows (scikit-learn's
    /// `add_indicator=True`).
    #[must_use]
    pub fn missing_indicators(mut self) -> Self {
        self.indicators = true;
        self
    }

    /// How to encode category columns (default [`Encoding::OneHot`]).
    #[must_use]
    pub fn encode(mut self, how: Encoding) -> Self {
        self.encoding = how;
        self
    }

    /// How to encode category column `name`, whatever the default.
    #[must_use]
    pub fn encode_column(mut self, name: impl Into<String>, how: Encoding) -> Self {
        self.encode_columns.push((name.into(), how));
        self
    }

    /// What a category unseen in training becomes (default [`Unknown::Reserved`]).
    #[must_use]
    pub fn unknown(mut self, how: Unknown) -> Self {
        self.unknown = how;
        self
    }

    /// Clips every number column to its training quantiles `low` and `high` (0.01
    /// and 0.99, say), against outliers.
    #[must_use]
    pub fn clip_quantiles(mut self, low: f64, high: f64) -> Self {
        self.clip = Some((low, high));
        self
    }

    /// Clips column `name` to its training quantiles `low` and `high`.
    #[must_use]
    pub fn clip_column(mut self, name: impl Into<String>, low: f64, high: f64) -> Self {
        self.clip_columns.push((name.into(), (low, high)));
        self
    }

    /// `ln(1 + x)` of these number columns (right-skewed counts and amounts).
    #[must_use]
    pub fn log1p<S: Into<String>>(mut self, names: impl IntoIterator<Item = S>) -> Self {
        let more = names.into_iter().map(|n| (n.into(), Reshape::Log1p));
        self.reshape.extend(more);
        self
    }

    /// Yeo-Johnson's power transform of these number columns, its exponent fitted.
    #[must_use]
    pub fn power<S: Into<String>>(mut self, names: impl IntoIterator<Item = S>) -> Self {
        let more = names.into_iter().map(|n| (n.into(), Reshape::Power));
        self.reshape.extend(more);
        self
    }

    /// Box-Cox's power transform of these number columns (positive values only),
    /// its exponent fitted.
    #[must_use]
    pub fn box_cox<S: Into<String>>(mut self, names: impl IntoIterator<Item = S>) -> Self {
        let more = names.into_iter().map(|n| (n.into(), Reshape::BoxCox));
        self.reshape.extend(more);
        self
    }

    /// Standardises the features of every number and date column last
    /// ([`Scaling::Standardize`]).
    #[must_use]
    pub fn standardize(mut self) -> Self {
        self.scaling = Scaling::Standardize;
        self
    }

    /// Scales the features of every number and date column to the training range
    /// last ([`Scaling::MinMax`]).
    #[must_use]
    pub fn min_max(mut self) -> Self {
        self.scaling = Scaling::MinMax;
        self
    }

    /// Scales every feature, the one-hot and ordinal columns and the missing
    /// indicators too, as Keras's `Normalization` layer adapted to a whole input
    /// does (TensorFlow's tutorials normalise one-hot columns so).
    #[must_use]
    pub fn scale_every_feature(mut self) -> Self {
        self.scale_every_feature = true;
        self
    }

    /// The target column.
    pub fn target(&self) -> &str {
        &self.target
    }
}

/// Why a column is not among a model's inputs.
#[derive(Clone, Debug, PartialEq)]
pub enum Dropped {
    /// [`TablePipeline::drop_columns`] named it.
    Asked,
    /// A text column (free text needs a tokenizer, not an encoder).
    Text,
    /// It missed this fraction of its training cells, over the threshold.
    Missing(f64),
}

/// What a transform became once fitted.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum FittedReshape {
    /// `ln(1 + x)`.
    Log1p,
    /// Yeo-Johnson with this exponent.
    Power(f64),
    /// Box-Cox with this exponent.
    BoxCox(f64),
}

/// The fitted steps of one number (or one part of a date).
#[derive(Clone, Debug, PartialEq)]
pub struct NumberSteps {
    /// What fills a missing cell.
    pub fill: f64,
    /// The bounds it is clipped to.
    pub clip: Option<(f64, f64)>,
    /// The transform after clipping.
    pub reshape: Option<FittedReshape>,
}

/// The fitted steps of a category column.
#[derive(Clone, Debug, PartialEq)]
pub struct CategorySteps {
    /// The categories of the training rows (after imputation), sorted.
    pub categories: Vec<String>,
    /// What fills a missing cell.
    pub fill: String,
    /// The encoding.
    pub encoding: Encoding,
    /// What an unseen category becomes.
    pub unknown: Unknown,
}

/// What happens to an input column.
#[derive(Clone, Debug, PartialEq)]
pub enum Role {
    /// It is left out.
    Dropped(Dropped),
    /// A number: one feature.
    Number(NumberSteps),
    /// A date: its year and its day of the year, each a number.
    Date {
        /// The year's steps.
        year: NumberSteps,
        /// The day of the year's steps.
        day_of_year: NumberSteps,
    },
    /// A category: one-hot columns or a rank.
    Category(CategorySteps),
}

/// One input column of a fitted pipeline.
#[derive(Clone, Debug, PartialEq)]
pub struct FittedColumn {
    /// The column's name.
    pub name: String,
    /// Its kind in the training frame.
    pub kind: Kind,
    /// Its missing cells in the training rows.
    pub missing: usize,
    /// Whether a `<name>.missing` indicator follows its features.
    pub indicator: bool,
    /// What happens to it.
    pub role: Role,
}

/// The target of a fitted pipeline.
#[derive(Clone, Debug, PartialEq)]
pub struct FittedTarget {
    /// The column's name.
    pub name: String,
    /// [`Kind::Category`] (class labels) or [`Kind::Number`] (real values).
    pub kind: Kind,
    /// The classes of a category target, sorted (label `i` is `classes[i]`);
    /// empty for a number target.
    pub classes: Vec<String>,
}

/// The training rows a pipeline was fitted on, and what dropped the others.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct RowCounts {
    /// The rows of the frame.
    pub read: usize,
    /// Dropped for a missing target.
    pub without_target: usize,
    /// Dropped for missing too many cells.
    pub too_sparse: usize,
    /// Dropped as duplicates of earlier rows.
    pub duplicates: usize,
    /// The rows left.
    pub kept: usize,
}

/// A [`TablePipeline`] with its statistics: the categories, fills, bounds,
/// exponents and scales learnt from the training rows, and the column order.
#[derive(Clone, Debug, PartialEq)]
pub struct FittedPipeline {
    pub(crate) target: FittedTarget,
    pub(crate) columns: Vec<FittedColumn>,
    pub(crate) max_missing_row: Option<f64>,
    pub(crate) drop_duplicates: bool,
    pub(crate) missing_markers: Vec<String>,
    pub(crate) training: RowCounts,
    pub(crate) features: Vec<String>,
    /// `(x - center) / scale` of each feature, or `None`.
    pub(crate) scales: Vec<Option<(f64, f64)>>,
}

impl FittedPipeline {
    /// The target.
    pub fn target(&self) -> &FittedTarget {
        &self.target
    }

    /// Every input column of the training frame but the target, in order, with
    /// what happens to it.
    pub fn columns(&self) -> &[FittedColumn] {
        &self.columns
    }

    /// The input column named `name`.
    pub fn column(&self, name: &str) -> Option<&FittedColumn> {
        self.columns.iter().find(|c| c.name == name)
    }

    /// The names of the features a model receives, in order (`mass`,
    /// `mass.missing`, `island=Biscoe`, `island.unknown`, `Year.year`, ...).
    pub fn feature_names(&self) -> &[String] {
        &self.features
    }

    /// The last step of each feature, `(x - center) / scale`: `Some((center,
    /// scale))` where the pipeline scales it.
    pub fn scales(&self) -> &[Option<(f64, f64)>] {
        &self.scales
    }

    /// The number of features a model receives (its input size).
    pub fn width(&self) -> usize {
        self.features.len()
    }

    /// An error unless the pipeline gives `width` features: a model's input size is
    /// fixed when it compiles, the number of one-hot columns when the pipeline is
    /// fitted.
    ///
    /// # Errors
    /// [`Error::Config`](crate::Error::Config) listing the features.
    pub fn check_width(&self, width: usize) -> crate::Result<()> {
        if self.width() == width {
            return Ok(());
        }
        Err(crate::Error::Config(format!(
            "the cleaning gives {} features ({}) but the model takes {width}: change the model's input",
            self.width(),
            self.features.join(", ")
        )))
    }

    /// The training rows it was fitted on.
    pub fn training_rows(&self) -> RowCounts {
        self.training
    }

    /// Options that read new rows as the training rows were read: the same missing
    /// markers, and each input column forced to its training kind (a one-row file
    /// cannot show that `Dream` is a category).
    pub fn read_options(&self) -> crate::frame::ReadOptions {
        let mut options = crate::frame::ReadOptions::new().missing(self.missing_markers.clone());
        for c in &self.columns {
            options = options.kind(c.name.clone(), c.kind);
        }
        // New rows need not hold the target or the columns left out.
        options.allow_absent_kinds()
    }
}

#[cfg(test)]
mod tests;
