//! Integration tests: svcdash with real PostgreSQL, Redis, MariaDB and RabbitMQ engines, driven
//! through its HTTP APIs and its command line.

mod api;
mod archiving;
mod backups;
mod broker;
mod browser;
mod browser_lifecycle;
mod cli;
mod cloud_foundry;
mod cluster_mariadb;
mod cluster_postgres;
mod cluster_story;
mod crash;
mod damaged_backups;
mod disaster_recovery;
mod downloads;
mod engine_story;
mod engines;
mod helpers;
mod idp;
mod isolation;
mod lifecycle;
mod master_key;
mod metrics;
mod new_engines;
mod pages;
mod parachute;
mod pitr;
mod retention;
mod s3;
mod schedule;
mod secrets;
mod sessions;
mod sso;
mod tokens;
mod web;
