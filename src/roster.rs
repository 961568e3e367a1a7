//! `claimgate roster`: roster CSV files (ROSTERS.md) made from the synthetic
//! population, so `import` can be tried and measured at any size: one
//! institutions file (a row per designation, `endtime` the termination that
//! ended it, if any) and one registrations file (a row per registration,
//! `endtime` its deregistration, if any), in the platform's column names.
//! Only what rosters hold is written: no suspensions, ratings or violations.

use claimgate::domain::{CivilDate, InstitutionCode};
use claimgate::event::Event;
use claimgate::population::{Group, Population};
use std::collections::HashMap;
use std::io::{BufWriter, Write};
use std::path::{Path, PathBuf};

/// The two files written and their row counts.
pub struct Written {
    pub institutions: PathBuf,
    pub institution_rows: u64,
    pub registrations: PathBuf,
    pub registration_rows: u64,
}

/// Writes `institutions.csv` and `registrations.csv` of `population` into
/// `dir` (created if absent); `progress(groups so far)` now and then.
pub fn write(population: &Population, dir: &Path, mut progress: impl FnMut(u64)) -> std::io::Result<Written> {
    std::fs::create_dir_all(dir)?;
    let institutions = dir.join("institutions.csv");
    let registrations = dir.join("registrations.csv");
    let mut inst = BufWriter::new(std::fs::File::create(&institutions)?);
    let mut reg = BufWriter::new(std::fs::File::create(&registrations)?);
    writeln!(inst, "fixmedins_code,begntime,endtime")?;
    writeln!(reg, "prac_psn_code,fixmedins_code,begntime,endtime")?;
    let (mut institution_rows, mut registration_rows, mut groups) = (0, 0, 0);
    let day = |d: Option<CivilDate>| d.map_or(String::new(), |d| d.to_string());
    for group in population.groups() {
        groups += 1;
        if groups % 100_000 == 0 {
            progress(groups);
        }
        match group {
            Group::Institution(code, events) => {
                let mut open: Option<CivilDate> = None;
                for r in &events {
                    match &r.event {
                        Event::InstitutionDesignated { effective, .. } if open.is_none() => open = Some(*effective),
                        Event::InstitutionTerminated { effective, .. } => {
                            if let Some(from) = open.take() {
                                writeln!(inst, "{code},{from},{effective}")?;
                                institution_rows += 1;
                            }
                        }
                        _ => {}
                    }
                }
                if let Some(from) = open {
                    writeln!(inst, "{code},{from},{}", day(None))?;
                    institution_rows += 1;
                }
            }
            Group::Practitioner(code, events) => {
                let mut open: HashMap<InstitutionCode, CivilDate> = HashMap::new();
                let mut order: Vec<InstitutionCode> = Vec::new();
                for r in &events {
                    match &r.event {
                        Event::PractitionerRegistered { institution, effective, .. }
                            if !open.contains_key(institution) =>
                        {
                            open.insert(*institution, *effective);
                            order.push(*institution);
                        }
                        Event::PractitionerDeregistered { institution, effective, .. } => {
                            if let Some(from) = open.remove(institution) {
                                writeln!(reg, "{code},{institution},{from},{effective}")?;
                                registration_rows += 1;
                                order.retain(|i| i != institution);
                            }
                        }
                        _ => {}
                    }
                }
                for institution in order {
                    writeln!(reg, "{code},{institution},{},", open[&institution])?;
                    registration_rows += 1;
                }
            }
        }
    }
    for w in [inst, reg] {
        w.into_inner().map_err(|e| e.into_error())?.sync_all()?;
    }
    Ok(Written { institutions, institution_rows, registrations, registration_rows })
}
