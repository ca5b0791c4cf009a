--
-- PostgreSQL database dump
--

\restrict Y35DyY26gdo6cbjylbS3VntwDAKwEauZG8WW9oHFEbJ6B8amJCUWOaDhckCyzdq

-- Dumped from database version 15.20 (Debian 15.20-0+deb12u1)
-- Dumped by pg_dump version 15.20 (Debian 15.20-0+deb12u1)

-- Started on 2026-11-26 12:46:28 UTC

SET statement_timeout = 0;
SET lock_timeout = 0;
SET idle_in_transaction_session_timeout = 0;
SET client_encoding = 'UTF8';
SET standard_conforming_strings = on;
SELECT pg_catalog.set_config('search_path', '', false);
SET check_function_bodies = false;
SET xmloption = content;
SET client_min_messages = warning;
SET row_security = off;

SET default_tablespace = '';

--
-- TOC entry 3210 (class 2606 OID 16446)
-- Dependencies: 214
-- Name: a a_pkey; Type: CONSTRAINT; Schema: public; Owner: postgres
-- Data Pos: 0
--

ALTER TABLE ONLY public.a
    ADD CONSTRAINT a_pkey PRIMARY KEY (id);


--
-- TOC entry 3212 (class 2606 OID 16448)
-- Dependencies: 214
-- Name: a a_x_key; Type: CONSTRAINT; Schema: public; Owner: postgres
-- Data Pos: 0
--

ALTER TABLE ONLY public.a
    ADD CONSTRAINT a_x_key UNIQUE (x);


--
-- TOC entry 3214 (class 1259 OID 16457)
-- Dependencies: 215
-- Name: i x; Type: INDEX; Schema: public; Owner: postgres
-- Data Pos: 0
--

CREATE INDEX "i x" ON public."B b" USING btree (y);


--
-- TOC entry 3215 (class 1259 OID 16464)
-- Dependencies: 216
-- Name: p_k_idx; Type: INDEX; Schema: public; Owner: postgres
-- Data Pos: 0
--

CREATE INDEX p_k_idx ON ONLY public.p USING btree (k);


--
-- TOC entry 3216 (class 1259 OID 16465)
-- Dependencies: 217 217 3215
-- Name: p1_k_idx; Type: INDEX; Schema: public; Owner: postgres
-- Data Pos: 0
--

CREATE INDEX p1_k_idx ON public.p1 USING btree (k);


SET default_tablespace = dummy_ts;

--
-- TOC entry 3213 (class 1259 OID 16773)
-- Dependencies: 214
-- Name: ts_idx; Type: INDEX; Schema: public; Owner: postgres; Tablespace: dummy_ts
-- Data Pos: 0
--

CREATE INDEX ts_idx ON public.a USING btree (x);


--
-- TOC entry 3368 (class 0 OID 0)
-- Dependencies: 3213
-- Name: INDEX ts_idx; Type: COMMENT; Schema: public; Owner: postgres
-- Data Pos: 0
--

COMMENT ON INDEX public.ts_idx IS 'hello';


--
-- TOC entry 3217 (class 0 OID 0)
-- Dependencies: 3216 3215 217 216
-- Name: p1_k_idx; Type: INDEX ATTACH; Schema: public; Owner: postgres
-- Data Pos: 0
--

ALTER INDEX public.p_k_idx ATTACH PARTITION public.p1_k_idx;


--
-- TOC entry 3219 (class 2620 OID 16466)
-- Dependencies: 214
-- Name: a t; Type: TRIGGER; Schema: public; Owner: postgres
-- Data Pos: 0
--

CREATE TRIGGER t BEFORE INSERT ON public.a FOR EACH ROW EXECUTE FUNCTION suppress_redundant_updates_trigger();


--
-- TOC entry 3218 (class 2606 OID 16452)
-- Dependencies: 214 215 3210
-- Name: B b B b_id_fkey; Type: FK CONSTRAINT; Schema: public; Owner: postgres
-- Data Pos: 0
--

ALTER TABLE ONLY public."B b"
    ADD CONSTRAINT "B b_id_fkey" FOREIGN KEY (id) REFERENCES public.a(id);


-- Completed on 2026-11-26 12:46:35 UTC

--
-- PostgreSQL database dump complete
--

\unrestrict Y35DyY26gdo6cbjylbS3VntwDAKwEauZG8WW9oHFEbJ6B8amJCUWOaDhckCyzdq

